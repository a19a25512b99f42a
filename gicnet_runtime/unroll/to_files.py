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
from gicnet_runtime.errors import Interrupted
from gicnet_runtime.io.formats import format_of, write_trajectory_blocks
from gicnet_runtime.io.outputs import numbered_paths
from gicnet_runtime.io.spool import FrameSpool, spool_path
from gicnet_runtime.unroll.checkpoint import DEFAULT_EVERY_S, PropagateCheckpoint, checkpoint_path
from gicnet_runtime.unroll.propagate import (
    UnrolledRun,
    note_unphysical,
    unroll,
    unroll_settings,
)


def propagate_to_files(model: Model, positions: np.ndarray, velocities: np.ndarray,
                       duration_fs: float, dt_fs: float, out: str | os.PathLike, *,
                       fmt: str | None = None, energy_threshold_eV: float | None = None,
                       progress: Callable[[int], None] | None = None,
                       restore_energy: bool | None = None, segment_fs: float | None = None,
                       checkpoint_every_s: float = DEFAULT_EVERY_S,
                       resume: bool = False,
                       interrupted: Callable[[], bool] | None = None,
                       stage: Callable[[Path], Path] | None = None,
                       commit: Callable[[], object] | None = None,
                       unphysical: str = "error",
                       first_index: int = 0) -> list[tuple[Path, UnrolledRun]]:
    """Unroll B trajectories into the files ``out`` names (one file for B = 1, else
    ``OUT_000.ext``, ...; :func:`gicnet_runtime.io.outputs.numbered_paths`).

    Args:
        model, positions (B, N, 3) Å, velocities (B, N, 3) Å/fs, duration_fs, dt_fs,
            energy_threshold_eV (None: the default), progress, restore_energy, segment_fs,
            unphysical: as for :func:`gicnet_runtime.unroll.propagate.unroll` (with
            "warn", each trajectory's first violation goes into its ``info["unphysical"]``,
            written with it), first_index (how messages number trajectory 0).
        out: the output file name; its suffix (or ``fmt``) gives the format.
        checkpoint_every_s: seconds between checkpoints (``OUT.resume.npz``).
        resume: continue from the checkpoint and spool of an interrupted run of the same
            arguments (a fresh start when there is none).
        interrupted: polled after every batched step; when it returns True, a checkpoint
            is saved at once and :class:`gicnet_runtime.errors.Interrupted` raised (says
            how to resume).
        stage: where to write each output (e.g. an output plan's staged name; default:
            the output itself); ``commit``: called once every one is written, before the
            checkpoint and the spool are deleted.

    Returns:
        (path, its run) per trajectory.  The checkpoint and the spool are deleted once
        every file is written (and committed).
    """
    kind = format_of(out, fmt)
    pos, vel, _ = model.validated_state(positions, velocities)
    options = {} if energy_threshold_eV is None else {"energy_threshold_eV": energy_threshold_eV}
    restore, segment = unroll_settings(model.description, restore_energy, segment_fs)
    checkpoint = PropagateCheckpoint(checkpoint_path(out), every_s=checkpoint_every_s,
                                     resume=resume)
    state = checkpoint.start(model.run_key(pos, vel, duration_fs, dt_fs, restore, segment,
                                           unphysical=unphysical, **options))
    spools: list[FrameSpool] = []

    def spool(*shape) -> FrameSpool:
        spools.append(FrameSpool(spool_path(out), *shape))
        return spools[0]

    def on_step(state, sink) -> None:
        checkpoint(state, sink)
        if interrupted is not None and interrupted():
            checkpoint.save(state, sink)
            raise Interrupted(f"interrupted after {int(state.segment.sum())} of "
                              f"{state.segment.size * state.n_segments} segments, saved in "
                              f"{checkpoint.path}: run the same command with --resume to "
                              "continue")

    runs = unroll(model, pos, vel, duration_fs, dt_fs, spool, progress=progress, state=state,
                  on_step=on_step, restore_energy=restore, segment_fs=segment,
                  unphysical=unphysical, first_index=first_index, **options)
    desc = model.description
    z, masses = np.asarray(desc.atomic_numbers), np.asarray(desc.masses_amu, dtype=np.float64)
    times = frame_times_fs(duration_fs, dt_fs)
    written = []
    for b, (path, run) in enumerate(zip(numbered_paths(out, len(runs)), runs)):
        if unphysical == "warn":
            note_unphysical(first_index + b, spools[0].blocks(b, run.n_frames, times, z, masses), run.info)
        blocks = spools[0].blocks(b, run.n_frames, times, z, masses)
        write_trajectory_blocks(blocks, stage(path) if stage else path, run.info, kind)
        written.append((path, run))
    if commit is not None:
        commit()
    spools[0].remove()
    checkpoint.remove()
    return written
