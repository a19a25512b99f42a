"""Unrolling straight into trajectory files, with bounded memory and resumable.

:func:`propagate_to_files` is what ``gicnet propagate`` runs: frames stream into a frame
spool next to the output (:mod:`gicnet_runtime.io.spool`) as they become final, the
unrolling state is checkpointed beside it (:mod:`gicnet_runtime.unroll.checkpoint`), and
when every trajectory is done each one is written, block by block and atomically, in its
output format.  Neither memory nor the checkpoint grows with the frames of the run, and
a run killed at any moment continues with ``resume=True`` to the same files an
uninterrupted run writes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gicnet_runtime.core.model import Model
from gicnet_runtime.core.timegrid import frame_times_fs
from gicnet_runtime.io.formats import format_of, write_trajectory_blocks
from gicnet_runtime.io.outputs import numbered_paths
from gicnet_runtime.io.spool import FrameSpool, spool_path
from gicnet_runtime.unroll.checkpoint import DEFAULT_EVERY_S, PropagateCheckpoint, checkpoint_path
from gicnet_runtime.unroll.propagate import UnrolledRun, unroll, unroll_settings


def propagate_to_files(model: Model, positions: np.ndarray, velocities: np.ndarray,
                       duration_fs: float, dt_fs: float, out: str | os.PathLike, *,
                       fmt: str | None = None, energy_threshold_eV: float | None = None,
                       progress: Callable[[int], None] | None = None,
                       restore_energy: bool | None = None, segment_fs: float | None = None,
                       checkpoint_every_s: float = DEFAULT_EVERY_S,
                       resume: bool = False) -> list[tuple[Path, UnrolledRun]]:
    """Unroll B trajectories into the files ``out`` names (one file for B = 1, else
    ``OUT_000.ext``, ...; :func:`gicnet_runtime.io.outputs.numbered_paths`).

    Args:
        model, positions (B, N, 3) Å, velocities (B, N, 3) Å/fs, duration_fs, dt_fs,
            energy_threshold_eV (None: the default), progress, restore_energy, segment_fs:
            as for :func:`gicnet_runtime.unroll.propagate.unroll`.
        out: the output file name; its suffix (or ``fmt``) gives the format.
        checkpoint_every_s: seconds between checkpoints (``OUT.resume.npz``).
        resume: continue from the checkpoint and spool of an interrupted run of the same
            arguments (a fresh start when there is none).

    Returns:
        (path written, its run) per trajectory.  The checkpoint and the spool are deleted
        once every file is written.
    """
    kind = format_of(out, fmt)
    pos, vel, _ = model.validated_state(positions, velocities)
    options = {} if energy_threshold_eV is None else {"energy_threshold_eV": energy_threshold_eV}
    restore, segment = unroll_settings(model.description, restore_energy, segment_fs)
    checkpoint = PropagateCheckpoint(checkpoint_path(out), every_s=checkpoint_every_s,
                                     resume=resume)
    state = checkpoint.start(model.run_key(pos, vel, duration_fs, dt_fs, restore, segment,
                                           **options))
    spools: list[FrameSpool] = []

    def spool(*shape) -> FrameSpool:
        spools.append(FrameSpool(spool_path(out), *shape))
        return spools[0]

    runs = unroll(model, pos, vel, duration_fs, dt_fs, spool, progress=progress, state=state,
                  on_step=checkpoint, restore_energy=restore, segment_fs=segment, **options)
    desc = model.description
    z, masses = np.asarray(desc.atomic_numbers), np.asarray(desc.masses_amu, dtype=np.float64)
    times = frame_times_fs(duration_fs, dt_fs)
    written = []
    for b, (path, run) in enumerate(zip(numbered_paths(out, len(runs)), runs)):
        blocks = spools[0].blocks(b, run.n_frames, times, z, masses)
        written.append((write_trajectory_blocks(blocks, path, run.info, kind), run))
    spools[0].remove()
    checkpoint.remove()
    return written
