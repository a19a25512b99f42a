"""One batched prediction of the current segment of several trajectories.

Per segment, for all its trajectories at once: every ensemble member predicts the
segment at the output frames that fall in it and at ``ENERGY_CHECKS_PER_SEGMENT`` check
times; the centre of mass and the momenta are restored; members that failed numerically
(non-finite, exploding geometry, an atom too fast) or, with physical-sanity bounds, broke
a bond or froze or overheated the molecule (:mod:`gicnet_runtime.core.sanity`) are
marked; the members' total-energy errors are computed; and, with energy restoration,
each member's end state gets the trajectory's initial total energy back
(:mod:`gicnet_runtime.unroll.propagate`): all of the deficit at the end, or the model's
``restore_fraction`` of it, measured at the end or, with ``restore_deficit`` "mean", as its
mean over the segment's check times (:class:`gicnet_runtime.core.description.
ModelDescription`).  With the model's ``reversal_share`` above 0 each segment is predicted
from its start corrected for the network's damping (:mod:`gicnet_runtime.unroll.reversal`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gicnet_runtime.core import internal, sanity
from gicnet_runtime.core.contract import ENERGY_T, POSITIONS_T, VELOCITIES_T
from gicnet_runtime.core.ensemble import total_energy_error_eV
from gicnet_runtime.core.icdef import ICDefinition
from gicnet_runtime.core.mechanics import kinetic_energy_eV
from gicnet_runtime.core.sanity import (  # noqa: F401  (re-exported: the unrolling's bounds)
    EXPLOSION_MARGIN_A,
    MAX_SPEED_A_PER_FS,
    extent_A,
)
from gicnet_runtime.core.timegrid import TIME_RTOL
from gicnet_runtime.unroll import energy_restore, reversal
from gicnet_runtime.unroll import momentum as mom
from gicnet_runtime.unroll.state import SegmentPrediction, UnrollState

if TYPE_CHECKING:
    from gicnet_runtime.core.model import Model

#: Times per segment at which energy and geometry are checked (besides the frames).
ENERGY_CHECKS_PER_SEGMENT = 10
#: In runs of several trajectories every graph call gets a multiple of this many rows (the
#: last row repeated): onnxruntime's CPU matrix kernels give a row the same float32 numbers
#: in any such batch, wherever the row sits, and slightly different ones (~1e-7) in the
#: last rows of other batches.  So a trajectory's numbers do not depend on which others
#: share its calls, also when backtracks leave a few trajectories a segment behind the rest
#: (Ray shards reproduce a one-process run).  A single trajectory's calls are not padded.
ROW_ALIGN = 4


def aligned_run(model: Model, n_trajectories: int):
    """``model.run`` for a run of ``n_trajectories``: rows padded to a multiple of
    ``ROW_ALIGN`` (none for a single trajectory), outputs cut back to the rows asked for."""
    align = ROW_ALIGN if n_trajectories > 1 else 1

    def run(positions: np.ndarray, velocities: np.ndarray, times: np.ndarray) -> dict:
        n_rows = positions.shape[0]
        pad = -n_rows % align
        if not pad:
            return model.run(positions, velocities, times)
        take = np.concatenate([np.arange(n_rows), np.full(pad, n_rows - 1)])
        out = model.run(positions[take], velocities[take], times[take])
        return {name: value[:, :n_rows] for name, value in out.items()}
    return run


class SegmentStep:
    """One batched prediction of the current segment of several trajectories."""

    def __init__(self, model: Model, masses: np.ndarray, segment_fs: float,
                 per_segment: list[np.ndarray], restore_ics: ICDefinition | None = None,
                 bounds: sanity.Bounds | None = None, n_trajectories: int = 1) -> None:
        """``restore_ics``: the IC definition whose bonds and angles energy restoration
        scales (None: no restoration); ``bounds``: the physical-sanity bounds of all B
        trajectories (:meth:`gicnet_runtime.core.sanity.Bounds.initial`), whose bond and
        temperature checks make a member's segment fail (None: numerical checks only);
        ``n_trajectories``: B, which decides the rows' padding (:func:`aligned_run`)."""
        self.model, self.masses, self.segment_fs = model, masses, segment_fs
        self.run = aligned_run(model, n_trajectories)
        self.bounds = bounds
        self.until_fs = float(per_segment[-1][-1])
        self.per_segment = per_segment
        self.restore = None if restore_ics is None else (internal.row_bonds(restore_ics),
                                                         internal.row_angles(restore_ics))
        checks_fs = segment_fs * np.arange(1, ENERGY_CHECKS_PER_SEGMENT + 1) \
            / ENERGY_CHECKS_PER_SEGMENT
        layouts, known = [], {}
        for s, frames in enumerate(per_segment):  # most segments share one layout
            local = frames - s * segment_fs
            key = local.tobytes()
            if key not in known:
                known[key] = _segment_times(local, checks_fs, segment_fs)
            layouts.append(known[key])
        width = max(len(times) for times, _, _ in layouts)
        # Per segment: local times (padded with L), frame count, columns of the check times
        # (the last one the end, L).
        self.local = np.full((len(layouts), width), segment_fs)
        for s, (times, _, _) in enumerate(layouts):
            self.local[s, :len(times)] = times
        self.n_frames = np.array([n for _, n, _ in layouts])
        self.checks = np.array([cols for _, _, cols in layouts])
        self.ends = self.checks[:, -1]
        self.fraction = model.description.restore_fraction
        self.deficit = model.description.restore_deficit
        self.share = model.description.reversal_share

    def predict(self, state: UnrollState, rows: np.ndarray, reference: np.ndarray | None,
                limits: np.ndarray) -> SegmentPrediction:
        """Every member's prediction of the current segment of trajectories ``rows``."""
        segment = state.segment[rows]
        local = self.local[segment]
        start_pos, start_vel = state.starts(rows)
        if self.share > 0:
            start = reversal.corrected_start(self.run, start_pos, start_vel, self.masses,
                                             self.segment_fs, self.share, reference)
            out = reversal.given_start_at_zero(
                self.run(start.positions, start.velocities, local), local, start)
        else:
            out = self.run(start_pos, start_vel, local)
        pos = out[POSITIONS_T].astype(np.float64)
        vel = out[VELOCITIES_T].astype(np.float64)
        finite = np.all(np.isfinite(pos) & np.isfinite(vel), axis=(2, 3, 4))
        energy = None
        if reference is not None:
            energy = out[ENERGY_T].astype(np.float64)
            finite &= np.all(np.isfinite(energy), axis=2)
        keep = finite[..., None, None, None]
        pos, vel = self._restored(state, rows, local, np.where(keep, pos, 0.0),
                                  np.where(keep, vel, 0.0))
        errors = np.zeros(finite.shape)
        if energy is not None:
            errors = total_energy_error_eV(energy, vel, self.masses, reference)
        reasons = _failures(finite, pos, vel, self.masses, limits)
        timed = np.zeros(reasons.shape, dtype=bool)  # reasons that say when themselves
        if self.bounds is not None:
            physical = self._physical(rows, segment, local, pos, vel)
            timed = (reasons == "") & np.not_equal(physical, None)
            reasons[timed] = [str(v) for v in physical[timed]]
        errors = np.where(reasons == "", errors, np.inf)
        cols = np.arange(len(rows))
        ends = self.ends[segment]
        end_pos, end_vel = pos[:, cols, ends], vel[:, cols, ends]
        if self.restore is not None and energy is not None:
            target = self._target_kinetic_eV(reference, energy, vel, segment, end_vel)
            end_vel = energy_restore.restore_kinetic_energy(
                end_pos, end_vel, self.masses, *self.restore,
                np.where(np.isfinite(target), target, 0.0))
        width = int(self.n_frames[segment].max())
        return SegmentPrediction(
            rows=rows, positions=pos[:, :, :width], velocities=vel[:, :, :width],
            potential_eV=None if energy is None else energy[:, :, :width],
            end_positions=end_pos, end_velocities=end_vel, errors_eV=errors,
            failures=self._failure_texts(errors, reasons, timed, segment))

    def _target_kinetic_eV(self, reference: np.ndarray, energy: np.ndarray, vel: np.ndarray,
                           segment: np.ndarray, end_vel: np.ndarray) -> np.ndarray:
        """(M, A) kinetic energy, eV, that restoration gives each member's end state: its
        own plus the model's fraction of the total-energy deficit (reference (A) minus
        potential energy (M, A, K) and kinetic energy of velocities (M, A, K, N, 3)), the
        deficit at the end or its mean over the segment's check times."""
        end_kinetic = kinetic_energy_eV(end_vel, self.masses)
        cols = np.arange(len(segment))[:, None]
        if self.deficit == "mean":
            at = self.checks[segment]                                      # (A, C)
            kinetic = kinetic_energy_eV(vel[:, cols, at], self.masses)     # (M, A, C)
            deficit = (reference[None, :, None] - energy[:, cols, at] - kinetic).mean(axis=-1)
            return end_kinetic + self.fraction * deficit
        # The end's deficit: f (reference - potential) + (1 - f) kinetic, exactly
        # reference - potential when all of it is restored.
        potential = energy[:, cols, self.ends[segment][:, None]][..., 0]
        return (self.fraction * (reference[None, :] - potential)
                + (1.0 - self.fraction) * end_kinetic)

    def _physical(self, rows: np.ndarray, segment: np.ndarray, local: np.ndarray,
                  pos: np.ndarray, vel: np.ndarray) -> np.ndarray:
        """(M, A) the first physical-sanity violation (:class:`gicnet_runtime.core.sanity.
        Violation`) of each member's prediction, positions and velocities (M, A, K, N, 3) at
        local times (A, K), or None.  A frozen stretch counts from the segment's start and,
        in segments shorter than ``FROZEN_WINDOW_FS``, must last the whole segment; times
        after the last output frame (the end of the run) are not checked."""
        start = segment * self.segment_fs
        frames = sanity.Frames(pos, vel, start[:, None] + local, start,
                               min(sanity.FROZEN_WINDOW_FS, self.segment_fs), self.until_fs)
        return sanity.first_violations(self.bounds.rows(rows), frames, sanity.PHYSICAL_CHECKS)

    def _failure_texts(self, errors: np.ndarray, reasons: np.ndarray, timed: np.ndarray,
                       segment: np.ndarray) -> list[str | None]:
        """Per column, why its best member failed when every member did, else None."""
        texts: list[str | None] = [None] * errors.shape[1]
        for a in np.flatnonzero(~np.isfinite(errors.min(axis=0))):
            best = np.argmin(errors[:, a])
            t0 = segment[a] * self.segment_fs
            texts[a] = reasons[best, a] + ("" if timed[best, a] else
                                           f" between t = {t0:g} and {t0 + self.segment_fs:g} fs")
        return texts

    def _restored(self, state: UnrollState, rows: np.ndarray, local: np.ndarray,
                  pos: np.ndarray, vel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centre of mass on its line, initial momenta restored: (M, A, K, N, 3) each."""
        t = state.segment[rows, None] * self.segment_fs + local
        p0 = state.momentum0[rows][:, None, :]
        com = state.com0[rows][:, None, :] + p0 / self.masses.sum() * t[..., None]
        pos = mom.restore_centre_of_mass(pos, self.masses, com)
        return pos, mom.restore_momentum(pos, vel, self.masses, p0,
                                         state.angular0[rows][:, None, :])


def _segment_times(frames_fs: np.ndarray, checks_fs: np.ndarray,
                   segment_fs: float) -> tuple[np.ndarray, int, np.ndarray]:
    """One segment's local times to predict: its frames, then the check times that are
    not already frames (within ``TIME_RTOL`` · L).  Each time is predicted once, so
    frames every 0.5 fs with checks every 1 fs cost 20 network rows per segment, not 30.

    frames_fs: (F,) fs from the segment's start; checks_fs: (C,) fs, the last one L, the
    segment length ``segment_fs``.  Returns (times (F + C') fs, F, the column of each check
    time (C,), the last one that of the end L).
    """
    frames = np.clip(frames_fs, 0.0, segment_fs)
    slack = TIME_RTOL * segment_fs
    match = np.abs(checks_fs[:, None] - frames[None, :]) <= slack
    extra = checks_fs[~match.any(axis=1)]
    times = np.concatenate([frames, extra])
    columns = np.argmax(np.abs(times[None, :] - checks_fs[:, None]) <= slack, axis=1)
    return times, frames.size, columns


def _failures(finite: np.ndarray, pos: np.ndarray, vel: np.ndarray, masses: np.ndarray,
              limits: np.ndarray) -> np.ndarray:
    """Why each member's prediction of each trajectory failed: (M, A) str, "" when it did not."""
    extent = np.max(extent_A(pos, masses), axis=-1)
    speed = np.max(np.linalg.norm(vel, axis=-1), axis=(-2, -1))
    reasons = np.full(finite.shape, "", dtype=object)
    reasons[speed > MAX_SPEED_A_PER_FS] = f"an atom faster than {MAX_SPEED_A_PER_FS} Å/fs"
    reasons[extent > limits[None, :]] = "exploding geometry"
    reasons[~finite] = "non-finite prediction"
    return reasons
