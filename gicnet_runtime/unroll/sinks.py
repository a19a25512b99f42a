"""Where unrolled frames go: the frame sinks of :func:`gicnet_runtime.unroll.propagate.unroll`.

A sink receives each trajectory's frames once they are final (:mod:`.state`), as
``write(rows, first, positions, velocities, potential_eV)``: frames ``first`` ..
``first + F - 1`` of trajectories ``rows``.  It also saves and restores itself with a
checkpoint (``mark`` / ``restore``).  Two exist:

- :class:`MemorySink` (here) keeps every frame in arrays: what
  :meth:`gicnet_runtime.core.model.Model.propagate` returns.  Its checkpoint holds the
  frames too, so it grows with the run.
- :class:`gicnet_runtime.io.spool.FrameSpool` writes them to a file as they come: memory
  and checkpoints stay bounded whatever the run's length (``gicnet propagate``).
- :class:`FrameQueue` (here) hands one trajectory's frames on as they come, for a
  consumer that steps through them (the ASE dynamics).
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple, Protocol

import numpy as np

from gicnet_runtime.core.mechanics import kinetic_energy_eV
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError
from gicnet_runtime.unroll.state import FRAME_DTYPE


class FrameSink(Protocol):
    """What :func:`gicnet_runtime.unroll.propagate.unroll` writes final frames to."""

    def begin(self) -> None:
        """Start a fresh run."""

    def write(self, rows: np.ndarray, first: int, positions: np.ndarray,
              velocities: np.ndarray, potential_eV: np.ndarray | None) -> None:
        """Frames first .. first + F - 1 of trajectories ``rows`` (A,): positions and
        velocities (A, F, N, 3) Å, Å/fs; potential (A, F) eV or None."""

    def mark(self) -> tuple[dict, dict[str, np.ndarray]]:
        """What a checkpoint must hold to restore the sink: (JSON header, arrays)."""

    def restore(self, header: dict, arrays: dict[str, np.ndarray]) -> None:
        """Continue from a checkpoint's :meth:`mark`."""


class MemorySink:
    """Every frame of B trajectories in arrays: positions, velocities (B, T, N, 3)
    float32 (``FRAME_DTYPE``), potential_eV (B, T) eV or None."""

    #: Names of the arrays a checkpoint holds.
    ARRAYS = ("positions", "velocities", "potential_eV")

    def __init__(self, n_batch: int, n_frames: int, n_atoms: int, has_energy: bool) -> None:
        self.positions = np.zeros((n_batch, n_frames, n_atoms, 3), FRAME_DTYPE)
        self.velocities = np.zeros((n_batch, n_frames, n_atoms, 3), FRAME_DTYPE)
        self.potential_eV = np.full((n_batch, n_frames), np.nan) if has_energy else None

    def begin(self) -> None:
        """Nothing to prepare: the arrays start empty."""

    def write(self, rows, first, positions, velocities, potential_eV) -> None:
        stop = first + positions.shape[1]
        self.positions[rows, first:stop] = positions
        self.velocities[rows, first:stop] = velocities
        if self.potential_eV is not None:
            self.potential_eV[rows, first:stop] = potential_eV

    def mark(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays = {name: getattr(self, name) for name in self.ARRAYS}
        return {"sink": "memory"}, {k: v for k, v in arrays.items() if v is not None}

    def restore(self, header: dict, arrays: dict[str, np.ndarray]) -> None:
        if header.get("sink") != "memory":
            raise InputError("the checkpoint's frames were written to a file, not kept in "
                             "memory")
        for name in self.ARRAYS:
            target = getattr(self, name)
            if target is None:
                continue
            saved = arrays.get(name)
            if saved is None or saved.shape != target.shape:
                raise InputError(f"checkpoint frames {name!r} do not match the run")
            target[...] = saved

    def trajectory(self, b: int, n_frames: int, times_fs: np.ndarray,
                   atomic_numbers: np.ndarray, masses: np.ndarray, info: dict) -> Trajectory:
        """Trajectory ``b``: its first ``n_frames`` frames (views, no copies)."""
        velocities = self.velocities[b, :n_frames]
        potential = None if self.potential_eV is None else self.potential_eV[b, :n_frames]
        return Trajectory(time_fs=times_fs[:n_frames], positions=self.positions[b, :n_frames],
                          velocities=velocities, atomic_numbers=atomic_numbers, masses=masses,
                          potential_energy=potential,
                          kinetic_energy=kinetic_energy_eV(velocities, masses), info=info)


class Frame(NamedTuple):
    """One final frame: positions (N, 3) Å, velocities (N, 3) Å/fs (float64 of the stored
    float32 values, as :class:`MemorySink` keeps them), potential energy eV or None."""

    positions: np.ndarray
    velocities: np.ndarray
    potential_eV: float | None


class FrameQueue:
    """The frames of one trajectory (B = 1), in order, as they become final: a FIFO
    (``frames``) that its consumer drains; it holds at most a segment's frames at a time
    when drained after every step."""

    def __init__(self, n_batch: int, n_frames: int, n_atoms: int, has_energy: bool) -> None:
        if n_batch != 1:
            raise InputError(f"a frame queue takes one trajectory, not {n_batch}")
        self.frames: deque[Frame] = deque()

    def begin(self) -> None:
        """Nothing to prepare."""

    def write(self, rows, first, positions, velocities, potential_eV) -> None:
        pos = positions[0].astype(FRAME_DTYPE).astype(np.float64)
        vel = velocities[0].astype(FRAME_DTYPE).astype(np.float64)
        for k in range(pos.shape[0]):
            energy = None if potential_eV is None else float(potential_eV[0, k])
            self.frames.append(Frame(pos[k], vel[k], energy))

    def mark(self) -> tuple[dict, dict[str, np.ndarray]]:
        raise InputError("a frame queue is not checkpointed")

    def restore(self, header: dict, arrays: dict[str, np.ndarray]) -> None:
        raise InputError("a frame queue is not checkpointed")
