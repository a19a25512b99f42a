"""A frame spool: the frames of B unrolled trajectories on disk while the run goes on.

``gicnet propagate`` streams every final frame (:mod:`gicnet_runtime.unroll.sinks`) into
one spool file next to its output, ``OUT.resume.frames``: fixed-size float32 records,
trajectory by trajectory (record ``b * T + t``: positions, velocities, potential energy,
NaN when the model has none), written with ``os.pwrite`` (no memory map, so the process
holds no frames).  Memory and the checkpoint then stay bounded whatever the run's length,
and a resumed run simply overwrites the records after the checkpoint's (the spool needs
no truncation).  When the run ends, each trajectory is read back in blocks and written in
its output format (:func:`gicnet_runtime.io.formats.write_trajectory_blocks`), then the
spool is deleted.  float32 is the network's own precision, so nothing is lost.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gicnet_runtime.core.mechanics import kinetic_energy_eV
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError, one_line
from gicnet_runtime.io.formats import BLOCK_FRAMES

#: Suffix added to the output name for the spool file.
SUFFIX = ".resume.frames"
_DTYPE = np.dtype("<f4")


def spool_path(out: str | os.PathLike) -> Path:
    """The spool file for output ``out``: ``OUT.resume.frames`` in the same folder."""
    out = Path(out)
    return out.with_name(out.name + SUFFIX)


class FrameSpool:
    """The spool of B trajectories of T frames of N atoms (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, n_batch: int, n_frames: int, n_atoms: int,
                 has_energy: bool) -> None:
        self.path = Path(path)
        self.shape = (n_batch, n_frames, n_atoms)
        self.has_energy = has_energy
        self.record = 6 * n_atoms + 1  # floats per frame
        self._fd: int | None = None

    def begin(self) -> None:
        """Start a fresh spool (an older one of the same name is emptied)."""
        self._open(os.O_RDWR | os.O_CREAT | os.O_TRUNC)

    def write(self, rows: np.ndarray, first: int, positions: np.ndarray,
              velocities: np.ndarray, potential_eV: np.ndarray | None) -> None:
        """Frames first .. first + F - 1 of trajectories ``rows`` (A, F, N, 3) Å, Å/fs;
        potential (A, F) eV or None."""
        n_rows, n_new = positions.shape[:2]
        if n_new == 0:  # a segment shorter than the frame spacing holds no output frame
            return
        records = np.empty((n_rows, n_new, self.record), _DTYPE)
        records[..., :-1] = np.concatenate([positions.reshape(n_rows, n_new, -1),
                                            velocities.reshape(n_rows, n_new, -1)], axis=-1)
        records[..., -1] = np.nan if potential_eV is None else potential_eV
        for row, block in zip(np.asarray(rows).tolist(), records):
            self._pwrite(block.tobytes(), self._offset(row, first))

    def mark(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The checkpoint's record of the spool: its name and layout (the frames stay in
        the file)."""
        return {"sink": "spool", "spool": self.path.name, "shape": list(self.shape)}, {}

    def restore(self, header: dict, arrays: dict[str, np.ndarray]) -> None:
        """Continue the spool a checkpoint recorded (it must still exist, same layout)."""
        if header.get("sink") != "spool" or header.get("shape") != list(self.shape):
            raise InputError("the checkpoint was not made for this run's frame spool")
        if not self.path.is_file():
            raise InputError(f"the checkpoint's frame spool {self.path} is missing; run "
                             "without --resume to start again")
        self._open(os.O_RDWR)

    def blocks(self, b: int, n_frames: int, times_fs: np.ndarray, atomic_numbers: np.ndarray,
               masses: np.ndarray, block_frames: int = BLOCK_FRAMES) -> Iterator[Trajectory]:
        """Trajectory ``b``'s first ``n_frames`` frames, read back in blocks of
        ``block_frames`` (each a Trajectory without info; kinetic energy from the
        velocities)."""
        n_atoms = self.shape[2]
        for start in range(0, n_frames, block_frames):
            count = min(block_frames, n_frames - start)
            raw = os.pread(self._fd, count * self.record * _DTYPE.itemsize,
                           self._offset(b, start))
            if len(raw) != count * self.record * _DTYPE.itemsize:
                raise InputError(f"frame spool {self.path} is truncated")
            records = np.frombuffer(raw, _DTYPE).reshape(count, self.record)
            pos = records[:, :3 * n_atoms].reshape(count, n_atoms, 3)
            vel = records[:, 3 * n_atoms:6 * n_atoms].reshape(count, n_atoms, 3)
            potential = records[:, -1].astype(np.float64) if self.has_energy else None
            yield Trajectory(times_fs[start:start + count], pos, vel, atomic_numbers, masses,
                             potential, kinetic_energy_eV(vel, masses))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Close and delete the spool (the outputs are written)."""
        self.close()
        self.path.unlink(missing_ok=True)

    def _open(self, flags: int) -> None:
        self.close()
        try:
            self._fd = os.open(self.path, flags, 0o644)
        except OSError as err:
            raise InputError(f"cannot open frame spool {self.path}: {one_line(err)}") from None

    def _offset(self, b: int, frame: int) -> int:
        return (b * self.shape[1] + frame) * self.record * _DTYPE.itemsize

    def _pwrite(self, data: bytes, offset: int) -> None:
        try:
            written = os.pwrite(self._fd, data, offset)
        except OSError as err:
            raise InputError(f"cannot write frame spool {self.path}: {one_line(err)}") from None
        if written != len(data):
            raise InputError(f"cannot write frame spool {self.path}: disk full?")
