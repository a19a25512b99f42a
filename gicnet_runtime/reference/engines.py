"""Reference potential-energy engines as ASE calculators: GFN2-xTB, GFN1-xTB, ANI-1x.

GFN2-xTB and GFN1-xTB come from tblite's ASE calculator.  ANI-1x, a torch model, is
assembled in the training layer (:mod:`gicnet_train.ani1x`); this table names it by
module, and that module is imported only when an ANI-1x calculator is made, so the
runtime itself never imports torch.

tblite runs at ``accuracy`` :data:`TBLITE_ACCURACY` (0.1, i.e. SCC thresholds ten times
tighter than tblite's default 1.0).  At the default, ethanol NVE at 0.5 fs drifts by
about -1 meV/ps (~1.3 K/ps) from the force/energy inconsistency of the loosely
converged SCC; at 0.1 the drift is ~0.02 meV/ps and the remaining total-energy
fluctuation scales as dt^2 (Verlet-limited), for ~20 % more time per force call.

All calculators return energies in eV and forces in eV/Å (ASE's convention).  The module
imports only numpy at import time (tblite, or the provider module, is imported when a
calculator is made), so the runtime's ``gicnet evaluate --engine`` and the training
layer's reference MD (``gicnet_runtime.reference.simulate``) share it without pulling in torch.
"""

from __future__ import annotations

import dataclasses
import importlib
from importlib import metadata

import numpy as np

from gicnet_runtime.errors import InputError


@dataclasses.dataclass(frozen=True)
class Engine:
    """One reference engine.

    Attributes:
        name: gicnet's short name ("gfn2", "gfn1", "ani1x").
        method: the method's proper name.
        package: the Python distribution that provides it.
        elements: atomic numbers it supports, or None for (nearly) all.
        provider: for engines other than tblite's, the module whose ``calculator()``
            makes a fresh ASE calculator (imported only then).
    """

    name: str
    method: str
    package: str
    elements: tuple[int, ...] | None = None
    provider: str | None = None

    def version(self) -> str:
        """'<method> (<package> <version>)', recorded in every trajectory's provenance."""
        try:
            version = metadata.version(self.package)
        except metadata.PackageNotFoundError:
            raise InputError(f"engine {self.name} needs {self.package}: "
                             "install gicnet[md]") from None
        if self.package == "tblite":
            return f"{self.method} ({self.package} {version}, accuracy {TBLITE_ACCURACY})"
        return f"{self.method} ({self.package} {version})"


ENGINES = {
    "gfn2": Engine("gfn2", "GFN2-xTB", "tblite"),
    "gfn1": Engine("gfn1", "GFN1-xTB", "tblite"),
    "ani1x": Engine("ani1x", "ANI-1x", "torchani", elements=(1, 6, 7, 8),
                    provider="gicnet_train.ani1x"),
}
#: tblite SCC accuracy (its thresholds scale with it; tblite's default is 1.0).
TBLITE_ACCURACY = 0.1


def get_engine(name: str) -> Engine:
    """The engine called ``name``; InputError naming the choices for anything else."""
    if name not in ENGINES:
        raise InputError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    return ENGINES[name]


def check_elements(engine: Engine, atomic_numbers: np.ndarray) -> None:
    """Raise InputError when ``engine`` cannot describe some of ``atomic_numbers`` (N,)."""
    if engine.elements is None:
        return
    unsupported = sorted({int(z) for z in atomic_numbers} - set(engine.elements))
    if unsupported:
        raise InputError(f"{engine.method} supports atomic numbers {list(engine.elements)}, "
                         f"not {unsupported}")


def make_calculator(name: str):
    """A fresh ASE calculator for engine ``name`` (energies eV, forces eV/Å)."""
    engine = get_engine(name)
    engine.version()  # fails early, with the install hint, when the package is missing
    if engine.package == "tblite":
        from tblite.ase import TBLite

        return TBLite(method=engine.method, accuracy=TBLITE_ACCURACY, verbosity=0)
    return importlib.import_module(engine.provider).calculator()


def single_threaded() -> None:
    """Initialiser of engine worker processes: one OpenMP/BLAS thread per process (the
    processes are the parallelism); set before tblite or torch start their thread pools."""
    import os

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
