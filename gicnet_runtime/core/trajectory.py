"""The in-memory trajectory type shared by every reader, writer and command.

Units: time fs, positions Å, velocities Å/fs, energies eV, masses amu.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gicnet_runtime.errors import InputError

if TYPE_CHECKING:  # ASE is optional (the io extra); only the annotation needs it here
    from ase import Atoms


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """One molecular-dynamics trajectory.

    Attributes:
        time_fs: (T,) float, fs, strictly increasing.
        positions: (T, N, 3) float64, or float32 as predicted (unrolled trajectories), Å.
        velocities: (T, N, 3) float64 or float32, Å/fs.
        atomic_numbers: (N,) int.
        masses: (N,) float, amu.
        potential_energy: (T,) float, eV, or None when unknown.
        kinetic_energy: (T,) float, eV, or None when unknown.
        info: provenance (engine, temperature_K, dt_fs, seed, ...), JSON-serialisable.
    """

    time_fs: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    atomic_numbers: np.ndarray
    masses: np.ndarray
    potential_energy: np.ndarray | None = None
    kinetic_energy: np.ndarray | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        t = np.asarray(self.time_fs, dtype=np.float64)
        pos, vel = _frames(self.positions), _frames(self.velocities)
        z = np.asarray(self.atomic_numbers, dtype=np.int64)
        m = np.asarray(self.masses, dtype=np.float64)
        if pos.ndim != 3 or pos.shape[-1] != 3:
            raise InputError(f"positions must have shape (T, N, 3), got {pos.shape}")
        if vel.shape != pos.shape:
            raise InputError(f"velocities shape {vel.shape} differs from positions {pos.shape}")
        n_frames, n_atoms = pos.shape[:2]
        if t.shape != (n_frames,):
            raise InputError(f"time_fs must have shape ({n_frames},), got {t.shape}")
        if z.shape != (n_atoms,) or m.shape != (n_atoms,):
            raise InputError(f"atomic_numbers and masses must have shape ({n_atoms},)")
        for name, arr in (("time_fs", t), ("positions", pos), ("velocities", vel), ("masses", m)):
            if not np.all(np.isfinite(arr)):
                raise InputError(f"{name} contains NaN or inf")
        if np.any(m <= 0):
            raise InputError("masses must be positive")
        if n_frames > 1 and np.any(np.diff(t) <= 0):
            raise InputError("time_fs must be strictly increasing")
        energies = {}
        for name in ("potential_energy", "kinetic_energy"):
            e = getattr(self, name)
            if e is not None:
                e = np.asarray(e, dtype=np.float64)
                if e.shape != (n_frames,):
                    raise InputError(f"{name} must have shape ({n_frames},), got {e.shape}")
            energies[name] = e
        for name, value in (("time_fs", t), ("positions", pos), ("velocities", vel),
                            ("atomic_numbers", z), ("masses", m), *energies.items()):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "info", dict(self.info))

    @property
    def n_frames(self) -> int:
        return self.positions.shape[0]

    @property
    def n_atoms(self) -> int:
        return self.positions.shape[1]

    def total_energy(self) -> np.ndarray:
        """(T,) float, eV: potential + kinetic energy (requires both)."""
        if self.potential_energy is None or self.kinetic_energy is None:
            raise InputError("trajectory has no potential or kinetic energy")
        return self.potential_energy + self.kinetic_energy

    def to_atoms(self) -> list[Atoms]:
        """One ``ase.Atoms`` per frame: positions, velocities (ASE units), masses,
        ``info["time_fs"]`` and the potential energy (eV) as a single-point calculator
        result when known (:func:`gicnet_runtime.integrations.ase.trajectory_to_atoms`)."""
        # The ASE integration sits two layers above this one and imports ASE: imported
        # only when asked for, so the core layer stays free of both.
        from gicnet_runtime.integrations.ase import trajectory_to_atoms

        return trajectory_to_atoms(self)

    def write(self, path: str | os.PathLike, fmt: str | None = None) -> Path:
        """Write the trajectory to ``path`` (format from the suffix unless ``fmt`` names it:
        h5md, extxyz, traj, npz) and return the path
        (:func:`gicnet_runtime.io.formats.write_trajectory`)."""
        # The file formats sit in the layer above this one (they import this module).
        from gicnet_runtime.io.formats import write_trajectory

        return write_trajectory(self, path, fmt)


def _frames(x) -> np.ndarray:
    """Positions or velocities as float64, or as float32 when given so (unrolled
    trajectories keep the network's precision: no float64 copy of a whole run)."""
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)
