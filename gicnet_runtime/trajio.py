"""Reading and writing trajectories: H5MD, extended XYZ, ASE .traj and MLatom's npz.

Every reader returns one :class:`~gicnet_runtime.trajectory.Trajectory` in the project's
units (fs, Å, Å/fs, amu, eV); units are converted here, at the file boundary, and
nowhere else.  Formats are chosen from the file suffix unless ``fmt`` is given:

=========  ====================  =============================================
fmt        suffixes              module
=========  ====================  =============================================
``h5md``   .h5 .h5md .hdf5       :mod:`gicnet_runtime.h5md` (h5py)
``extxyz`` .xyz .extxyz          :mod:`gicnet_runtime.ase_formats` (ASE)
``traj``   .traj                 :mod:`gicnet_runtime.ase_formats` (ASE)
``npz``    .npz                  :mod:`gicnet_runtime.mlatom_npz` (numpy only)
=========  ====================  =============================================

This module imports only numpy; h5py and ASE are imported when a file of their
format is read or written.  Writes are atomic: the file is written under a
temporary name in the target folder and renamed over the target at the end, so an
error never leaves a half-written file behind.  Malformed or truncated files,
missing velocities and non-finite values raise :class:`InputError` with one line.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from gicnet_runtime.errors import InputError
from gicnet_runtime.trajectory import Trajectory

FORMATS = ("h5md", "extxyz", "traj", "npz")
SUFFIX_FORMATS = {
    ".h5": "h5md",
    ".h5md": "h5md",
    ".hdf5": "h5md",
    ".xyz": "extxyz",
    ".extxyz": "extxyz",
    ".traj": "traj",
    ".npz": "npz",
}
#: Exceptions third-party readers raise on malformed files; gicnet turns them into InputError.
READ_FAILURES = (
    OSError, KeyError, ValueError, IndexError, TypeError, AttributeError, EOFError,
    zipfile.BadZipFile, UnicodeDecodeError, AssertionError, StopIteration,
    RuntimeError,  # h5py: "address of object past end of allocation" and the like
    MemoryError,  # a damaged header that claims an enormous array (ASE .traj)
)


def format_of(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The format name for ``path``: ``fmt`` when given, else from the suffix."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise InputError(f"unknown trajectory format {fmt!r}; choose one of {FORMATS}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        known = " ".join(sorted(SUFFIX_FORMATS))
        raise InputError(f"cannot tell the format of {path} from its suffix ({known}); pass fmt")
    return SUFFIX_FORMATS[suffix]


def read_trajectory(
    path: str | os.PathLike,
    frame_spacing_fs: float | None = None,
    fmt: str | None = None,
    *,
    npz_energy_unit: str = "Hartree",
) -> Trajectory:
    """Read one trajectory file into the project's units.

    Args:
        path: the file.
        frame_spacing_fs: time between frames, fs, used only when the file stores no
            times (extended XYZ / .traj frames without ``time_fs`` in their info, or an
            npz without ``t``).  Times then start at 0.
        fmt: ``"h5md"``, ``"extxyz"``, ``"traj"`` or ``"npz"``; default from the suffix.
        npz_energy_unit: unit of ``ep``/``ek`` in MLatom npz files: ``"Hartree"``
            (MLatom's unit, the default), ``"eV"`` or ``"kcal/mol"``.

    Returns:
        The trajectory: time_fs (T,) fs, positions (T, N, 3) Å, velocities (T, N, 3) Å/fs,
        masses (N,) amu, energies (T,) eV or None, provenance in ``info``.
    """
    path = Path(path)
    kind = format_of(path, fmt)
    if not path.is_file():
        raise InputError(f"trajectory file not found: {path}")
    try:
        traj = _read(path, kind, frame_spacing_fs, npz_energy_unit)
        _check_energies_finite(traj)
    except InputError as err:
        raise InputError(f"{path}: {_one_line(err)}") from None
    except READ_FAILURES as err:
        raise InputError(f"cannot read {kind} file {path}: {_one_line(err)}") from None
    return traj


def read_trajectories(
    paths: Iterable[str | os.PathLike],
    frame_spacing_fs: float | None = None,
    fmt: str | None = None,
    *,
    npz_energy_unit: str = "Hartree",
) -> list[Trajectory]:
    """Read several trajectory files (see :func:`read_trajectory`), in the given order."""
    paths = list(paths)
    if not paths:
        raise InputError("no trajectory files given")
    return [read_trajectory(p, frame_spacing_fs, fmt, npz_energy_unit=npz_energy_unit)
            for p in paths]


def write_trajectory(
    traj: Trajectory,
    path: str | os.PathLike,
    fmt: str | None = None,
    *,
    npz_energy_unit: str = "Hartree",
) -> Path:
    """Write ``traj`` atomically to ``path`` and return the path.

    Energies may be None (predicted trajectories); they are then left out of the file.
    ``npz_energy_unit`` is the unit ``ep``/``ek`` are written in for MLatom npz files.
    The parent folder must exist.
    """
    path = Path(path)
    kind = format_of(path, fmt)
    if not path.parent.is_dir():
        raise InputError(f"output folder does not exist: {path.parent}")
    try:
        with atomic_target(path) as tmp:
            _write(traj, tmp, kind, npz_energy_unit)
    except OSError as err:
        raise InputError(f"cannot write {path}: {_one_line(err)}") from None
    return path


def check_writable(path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Fail early, before any work, unless a trajectory can be written to ``path``:
    a known format, an existing folder, and permission to create files in it."""
    path = Path(path)
    format_of(path, fmt)
    if not path.parent.is_dir():
        raise InputError(f"output folder does not exist: {path.parent}")
    if path.is_dir():
        raise InputError(f"output path is a folder: {path}")
    probe = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.probe")
    try:
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as err:
        raise InputError(f"cannot write to {path.parent}: {_one_line(err)}") from None
    return path


def _read(path: Path, kind: str, frame_spacing_fs: float | None, energy_unit: str) -> Trajectory:
    if kind == "h5md":
        from gicnet_runtime import h5md

        return h5md.read_h5md(path)
    if kind == "npz":
        from gicnet_runtime import mlatom_npz

        return mlatom_npz.read_npz(path, frame_spacing_fs, energy_unit)
    from gicnet_runtime import ase_formats

    return ase_formats.read_ase(path, kind, frame_spacing_fs)


def _write(traj: Trajectory, path: Path, kind: str, energy_unit: str) -> None:
    if kind == "h5md":
        from gicnet_runtime import h5md

        h5md.write_h5md(traj, path)
    elif kind == "npz":
        from gicnet_runtime import mlatom_npz

        mlatom_npz.write_npz(traj, path, energy_unit)
    elif kind == "extxyz":
        from gicnet_runtime import ase_formats

        ase_formats.write_extxyz(traj, path)
    else:
        from gicnet_runtime import ase_formats

        ase_formats.write_traj(traj, path)


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The writer creates the temporary file itself, so it gets the usual permissions
    (mkstemp would make it private to the user).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _check_energies_finite(traj: Trajectory) -> None:
    for name in ("potential_energy", "kinetic_energy"):
        value = getattr(traj, name)
        if value is not None and not np.all(np.isfinite(value)):
            raise InputError(f"{name} contains NaN or inf")


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def jsonable(value):
    """``json.dumps`` fallback for numpy scalars and arrays in provenance."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise InputError(f"provenance value of type {type(value).__name__} is not JSON-serialisable")


def require(module: str):
    """Import an optional dependency of the ``io`` extra, or raise InputError saying so."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"{module} is needed for this file format: install gicnet[io]") from None
