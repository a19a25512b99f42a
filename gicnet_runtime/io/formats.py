"""Reading and writing trajectories through one format registry.

Every reader returns one :class:`~gicnet_runtime.core.trajectory.Trajectory` in the
project's units (fs, Å, Å/fs, amu, eV); units are converted here, at the file boundary,
and nowhere else.  ``REGISTRY`` maps each format's name to its suffixes and to the module
that implements it (in the style of ASE's io/formats): module ``M`` provides
``read_NAME(path, **options)`` and ``write_NAME_blocks(path, blocks, info, **options)``,
imported when a file of the format is first read or written.

=========  ====================  =============================================
name       suffixes              module
=========  ====================  =============================================
``h5md``   .h5 .h5md .hdf5       :mod:`gicnet_runtime.io.h5md` (h5py)
``extxyz`` .xyz .extxyz          :mod:`gicnet_runtime.io.ase_formats` (ASE)
``traj``   .traj                 :mod:`gicnet_runtime.io.ase_formats` (ASE)
``npz``    .npz                  :mod:`gicnet_runtime.io.mlatom_npz` (numpy only)
=========  ====================  =============================================

A trajectory is written in blocks of frames (``blocks``: consecutive Trajectory pieces
of one run), so a long run converted from its spool (:mod:`gicnet_runtime.io.spool`)
never needs all its frames in memory; npz alone gathers them (numpy's npz has no
append).  Writes are atomic (:mod:`gicnet_runtime.atomic`): an error never leaves a
half-written file.  Malformed or truncated files, missing velocities and non-finite
values raise :class:`InputError` with one line.  Each reader first checks that what the
file claims (atom counts, array shapes) fits in the file's size and reads JSON with
bounded size and nesting (:mod:`gicnet_runtime.io.limits`, :mod:`gicnet_runtime.jsonsafe`).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from gicnet_runtime.atomic import atomic_target, check_output_file
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError, one_line
from gicnet_runtime.io.support import READ_FAILURES, jsonable, require  # noqa: F401


@dataclasses.dataclass(frozen=True)
class TrajectoryFormat:
    """One entry of the registry: ``name``, file ``suffixes`` (lower case), the
    ``module`` (in gicnet_runtime.io) with its reader and block writer, a description."""

    name: str
    suffixes: tuple[str, ...]
    module: str
    description: str

    def reader(self):
        """``read_NAME(path, **options) -> Trajectory``."""
        return self._function(f"read_{self.name}")

    def block_writer(self):
        """``write_NAME_blocks(path, blocks, info, **options)``."""
        return self._function(f"write_{self.name}_blocks")

    def _function(self, name: str):
        return getattr(importlib.import_module(f"gicnet_runtime.io.{self.module}"), name)


REGISTRY = {f.name: f for f in (
    TrajectoryFormat("h5md", (".h5", ".h5md", ".hdf5"), "h5md", "H5MD 1.1 (h5py)"),
    TrajectoryFormat("extxyz", (".xyz", ".extxyz"), "ase_formats",
                     "extended XYZ, full precision, velocities as ASE momenta"),
    TrajectoryFormat("traj", (".traj",), "ase_formats", "ASE trajectory"),
    TrajectoryFormat("npz", (".npz",), "mlatom_npz", "MLatom npz (numpy only)"),
)}
FORMATS = tuple(REGISTRY)
SUFFIX_FORMATS = {suffix: f.name for f in REGISTRY.values() for suffix in f.suffixes}
#: Frames per block when a trajectory is written from a spool.
BLOCK_FRAMES = 4096


def format_of(path: str | os.PathLike, fmt: str | None = None, *,
              hint: str = "pass fmt") -> str:
    """The format name for ``path``: ``fmt`` when given, else from the suffix; ``hint`` ends
    the error for an unknown suffix (the CLI's says ``pass --format``)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise InputError(f"unknown trajectory format {fmt!r}; choose one of {FORMATS}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        known = " ".join(sorted(SUFFIX_FORMATS))
        raise InputError(f"cannot tell the format of {path} from its suffix ({known}); {hint}")
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
        traj = REGISTRY[kind].reader()(path, frame_spacing_fs=frame_spacing_fs,
                                      energy_unit=npz_energy_unit)
        _check_energies_finite(traj)
    except InputError as err:
        raise InputError(f"{path}: {one_line(err)}") from None
    except READ_FAILURES as err:
        raise InputError(f"cannot read {kind} file {path}: {one_line(err)}") from None
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
    return write_trajectory_blocks([traj], path, traj.info, fmt,
                                   npz_energy_unit=npz_energy_unit)


def write_trajectory_blocks(
    blocks: Iterable[Trajectory],
    path: str | os.PathLike,
    info: dict,
    fmt: str | None = None,
    *,
    npz_energy_unit: str = "Hartree",
) -> Path:
    """Write one trajectory given as consecutive blocks of its frames (each a Trajectory
    of the same atoms; their own ``info`` is ignored) with provenance ``info``,
    atomically, to ``path``; returns the path."""
    path = Path(path)
    kind = REGISTRY[format_of(path, fmt)]
    if not path.parent.is_dir():
        raise InputError(f"output folder does not exist: {path.parent}")
    try:
        with atomic_target(path) as tmp:
            kind.block_writer()(tmp, blocks, info, energy_unit=npz_energy_unit)
    except OSError as err:
        raise InputError(f"cannot write {path}: {one_line(err)}") from None
    return path


def check_writable(path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Fail early, before any work, unless a trajectory can be written to ``path``:
    a known format, an existing folder, and permission to create files in it."""
    format_of(path, fmt)
    return check_output_file(path)


def _check_energies_finite(traj: Trajectory) -> None:
    for name in ("potential_energy", "kinetic_energy"):
        value = getattr(traj, name)
        if value is not None and not np.all(np.isfinite(value)):
            raise InputError(f"{name} contains NaN or inf")
