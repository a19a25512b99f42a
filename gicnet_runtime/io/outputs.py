"""Writing the runtime's results: one trajectory file per initial condition.

Several trajectories written to one ``--out`` name become numbered files next to it:
``out.h5`` -> ``out_000.h5``, ``out_001.h5``, ...; a single trajectory keeps the name.
Each file is written atomically by :func:`gicnet_runtime.io.formats.write_trajectory`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gicnet_runtime.core.description import ModelDescription
from gicnet_runtime.core.mechanics import kinetic_energy_eV
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.io.formats import format_of, write_trajectory


def numbered_paths(out: str | os.PathLike, count: int) -> list[Path]:
    """``count`` output paths for ``out``: itself for one, ``stem_000.ext``, ... for more."""
    out = Path(out)
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i:03d}{out.suffix}") for i in range(count)]


def write_trajectories(trajectories: Sequence[Trajectory], out: str | os.PathLike,
                       fmt: str | None = None) -> list[Path]:
    """Write each trajectory atomically (see :func:`numbered_paths`); returns the paths."""
    format_of(out, fmt)  # fail on an unknown suffix before anything is written
    paths = numbered_paths(out, len(trajectories))
    return [write_trajectory(t, p, fmt) for t, p in zip(trajectories, paths)]


def prediction_trajectories(positions: np.ndarray, velocities: np.ndarray,
                            potential_energy: np.ndarray | None, times_fs: np.ndarray,
                            description: ModelDescription, info: dict,
                            member: np.ndarray) -> list[Trajectory]:
    """One trajectory per initial condition from predicted frames at increasing times.

    positions, velocities: (B, K, N, 3) Å, Å/fs; potential_energy: (B, K) eV or None;
    times_fs: (K,) strictly increasing, fs; member: (B,) ensemble member used, -1 for the
    members' mean (in ``info``).
    """
    masses = np.asarray(description.masses_amu, dtype=np.float64)
    return [Trajectory(time_fs=times_fs, positions=positions[b], velocities=velocities[b],
                       atomic_numbers=np.asarray(description.atomic_numbers), masses=masses,
                       potential_energy=None if potential_energy is None else potential_energy[b],
                       kinetic_energy=kinetic_energy_eV(velocities[b], masses),
                       info=dict(info, member=int(member[b])))
            for b in range(positions.shape[0])]
