"""Long trajectories: unrolling a 4D model segment by segment.

A GICnet model predicts any time in [0, tc] from a start state; a trajectory of any
length is a chain of segments of length L <= tc (``segment_fs``; by default the model's
``default_segment_fs``) in which each segment's end state is the next one's start.  Per
segment, for all trajectories at once (one batch per member):

1. every ensemble member predicts the segment at the output frames that fall in it and
   at ``ENERGY_CHECKS_PER_SEGMENT`` evenly spaced check times (the last is the end, L),
   each distinct time once (check times that are also frames are not predicted twice);
2. the centre of mass is put back on its straight line and the velocities are given
   back the initial linear and angular momentum (:mod:`gicnet_runtime.momentum`);
3. members whose prediction is non-finite, flies apart (an atom more than
   ``EXPLOSION_MARGIN_A`` beyond the initial molecule's extent) or moves faster than
   ``MAX_SPEED_A_PER_FS`` count as failed;
4. members are ranked by total-energy error (:mod:`gicnet_runtime.ensemble`) and
   :class:`gicnet_runtime.unroll.UnrollState` accepts, steps back or stops each
   trajectory (all trajectories within the threshold at once);
5. with energy restoration (the default for models with energy), each member's end state
   gets the trajectory's initial total energy back before it can start the next segment
   (:mod:`gicnet_runtime.energy_restore`).

The result is one :class:`Trajectory` per initial condition, with frames at 0, dt, 2 dt,
... <= duration, kinetic energy from the velocities, potential energy from the model
(when it has one) and the per-segment choices in ``info``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from gicnet_runtime import energy_restore, internal
from gicnet_runtime import momentum as mom
from gicnet_runtime.description import ModelDescription
from gicnet_runtime.ensemble import (
    ENERGY_THRESHOLD_EV,
    reference_energy_eV,
    total_energy_error_eV,
)
from gicnet_runtime.errors import InputError, ModelError
from gicnet_runtime.icdef import ICDefinition
from gicnet_runtime.timegrid import TIME_RTOL, frame_times_fs, segment_of, unroll_segment_fs
from gicnet_runtime.trajectory import Trajectory
from gicnet_runtime.unroll import SegmentPrediction, UnrollState

if TYPE_CHECKING:  # the model module imports this one
    from gicnet_runtime.model import Model

#: Times per segment at which energy and geometry are checked (besides the frames).
ENERGY_CHECKS_PER_SEGMENT = 10
#: An atom this much farther from the centre of mass than any atom at t = 0 means the
#: prediction exploded, Å.
EXPLOSION_MARGIN_A = 10.0
#: A speed above this means the prediction exploded, Å/fs (100 km/s; thermal H ~0.02).
MAX_SPEED_A_PER_FS = 1.0


def propagate(model: Model, positions: np.ndarray, velocities: np.ndarray,
              duration_fs: float, dt_fs: float, *,
              energy_threshold_eV: float = ENERGY_THRESHOLD_EV,
              progress: Callable[[int], None] | None = None,
              state: UnrollState | None = None,
              on_step: Callable[[UnrollState], None] | None = None,
              restore_energy: bool | None = None,
              segment_fs: float | None = None) -> list[Trajectory]:
    """Unroll trajectories from B initial conditions (see the module docstring).

    Args:
        model: the model (:class:`gicnet_runtime.model.Model`): one network or an
            ensemble, whose members' outputs come stacked from ``model.run``.
        positions: (B, N, 3) Å, validated.
        velocities: (B, N, 3) Å/fs, validated.
        duration_fs: length of the trajectories, fs.
        dt_fs: spacing of the output frames, fs (any value, independent of tc).
        energy_threshold_eV: largest acceptable total-energy error of a segment, eV.
        progress: called with the number of newly accepted segments (of B·S in all);
            when continuing from ``state``, first with the segments it already holds.
        state: the unrolling state saved by an interrupted run of these same arguments
            (:mod:`gicnet_runtime.resume`), to continue from; None starts afresh.
        on_step: called with the unrolling state after every batched step (checkpoints).
        restore_energy: give each segment's end state, which starts the next segment, the
            trajectory's initial total energy (model potential plus kinetic) by scaling its
            stretch-and-bend velocities (:mod:`gicnet_runtime.energy_restore`);
            None: whenever the model has energy.  The frames themselves stay as predicted.
        segment_fs: length of the unrolled segments, fs, at most the model's tc (None: the
            model's ``default_segment_fs``): shorter segments use the model's more accurate
            early times, at the cost of more network calls per fs.

    Returns:
        B trajectories.  One that failed numerically ends at its last good segment and
        says why in ``info["failure"]``.
    """
    desc = model.description
    masses = np.asarray(desc.masses_amu, dtype=np.float64)
    frames = frame_times_fs(duration_fs, dt_fs)
    if frames.size < 2:
        raise InputError(f"dt_fs {dt_fs} is longer than duration_fs {duration_fs}: no frames")
    if not energy_threshold_eV > 0:
        raise InputError(f"energy threshold must be positive, got {energy_threshold_eV} eV")
    restore_energy, segment_fs = unroll_settings(desc, restore_energy, segment_fs)
    frame_segment = segment_of(frames, segment_fs)
    per_segment = [frames[frame_segment == s] for s in range(int(frame_segment[-1]) + 1)]
    if state is None:
        state = UnrollState(positions, velocities, mom.linear_momentum(velocities, masses),
                            mom.angular_momentum(positions, velocities, masses),
                            mom.centre_of_mass(positions, masses),
                            np.array([f.size for f in per_segment]), model.n_members,
                            desc.has_energy)
    else:
        if state.positions0.shape != positions.shape or state.n_segments != len(per_segment):
            raise InputError(f"saved state holds {state.positions0.shape[0]} trajectories of "
                             f"{state.n_segments} segments, not {positions.shape[0]} of "
                             f"{len(per_segment)}")
        if progress is not None:
            progress(int(state.segment.sum()))
    potential0 = _initial_potential(model, positions, velocities)
    reference = (reference_energy_eV(potential0, velocities, masses)
                 if potential0 is not None else None)
    limits = _extent_A(positions, masses) + EXPLOSION_MARGIN_A
    step = _Step(model, masses, segment_fs, per_segment,
                 ICDefinition(desc.ic_rows) if restore_energy else None)
    while (active := state.active()).size:
        prediction = step.predict(state, active, None if reference is None else reference[active],
                                  limits[active])
        done = state.offer(prediction, energy_threshold_eV)
        if progress is not None and done:
            progress(done)
        if on_step is not None:
            on_step(state)
    info = {"engine": "gicnet", "models": [p.name for p in model.paths],
            "n_members": model.n_members,
            "tc_fs": desc.tc_fs, "segment_fs": segment_fs, "dt_fs": float(dt_fs),
            "duration_fs": float(duration_fs),
            "energy_threshold_eV": float(energy_threshold_eV),
            "restore_energy": bool(restore_energy)}
    return [_trajectory(state, b, frames, desc, masses, potential0, info)
            for b in range(positions.shape[0])]


def unroll_settings(desc: ModelDescription, restore_energy: bool | None,
                    segment_fs: float | None) -> tuple[bool, float]:
    """The energy restoration and segment length (fs) a run of :func:`propagate` uses:
    the requested ones, checked, or the model's defaults for None (restoration when the
    model has energy; its ``default_segment_fs``)."""
    if restore_energy is None:
        restore_energy = desc.has_energy
    elif restore_energy and not desc.has_energy:
        raise InputError("energy restoration needs a model with an energy output")
    segment = unroll_segment_fs(desc.tc_fs, desc.default_segment_fs if segment_fs is None
                                else segment_fs)
    return bool(restore_energy), segment


def _initial_potential(model: Model, positions: np.ndarray,
                       velocities: np.ndarray) -> np.ndarray | None:
    """Each member's potential energy at t = 0: (M, B) eV, or None without energy."""
    if not model.description.has_energy:
        return None
    zero = np.zeros((positions.shape[0], 1))
    potential = model.run(positions, velocities, zero)["energy_t"][:, :, 0].astype(np.float64)
    if not np.all(np.isfinite(potential)):
        bad = np.argwhere(~np.isfinite(potential))[0]
        raise ModelError(f"member {bad[0]} of the model ({', '.join(p.name for p in model.paths)}"
                         f") gives a non-finite potential energy at t = 0 for initial "
                         f"condition {bad[1]}")
    return potential


def _extent_A(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Largest atom distance from the centre of mass: (..., N, 3) Å -> (...) Å."""
    rel = positions - mom.centre_of_mass(positions, masses)[..., None, :]
    return np.max(np.linalg.norm(rel, axis=-1), axis=-1)


class _Step:
    """One batched prediction of the current segment of several trajectories."""

    def __init__(self, model: Model, masses: np.ndarray, segment_fs: float,
                 per_segment: list[np.ndarray], restore_ics: ICDefinition | None = None) -> None:
        """``restore_ics``: the IC definition whose bonds and angles energy restoration
        scales (None: no restoration)."""
        self.model, self.masses, self.segment_fs = model, masses, segment_fs
        self.per_segment = per_segment
        self.restore = None if restore_ics is None else (internal.row_bonds(restore_ics),
                                                         internal.row_angles(restore_ics))
        checks_fs = segment_fs * np.arange(1, ENERGY_CHECKS_PER_SEGMENT + 1) \
            / ENERGY_CHECKS_PER_SEGMENT
        layouts = [_segment_times(frames - s * segment_fs, checks_fs, segment_fs)
                   for s, frames in enumerate(per_segment)]
        width = max(len(times) for times, _, _ in layouts)
        # Per segment: local times (padded with L), frame count and column of the end L.
        self.local = np.full((len(layouts), width), segment_fs)
        for s, (times, _, _) in enumerate(layouts):
            self.local[s, :len(times)] = times
        self.n_frames = np.array([n for _, n, _ in layouts])
        self.ends = np.array([end for _, _, end in layouts])

    def predict(self, state: UnrollState, rows: np.ndarray, reference: np.ndarray | None,
                limits: np.ndarray) -> SegmentPrediction:
        """Every member's prediction of the current segment of trajectories ``rows``."""
        segment = state.segment[rows]
        local = self.local[segment]
        start_pos, start_vel = state.starts(rows)
        out = self.model.run(start_pos, start_vel, local)
        pos = out["positions_t"].astype(np.float64)
        vel = out["velocities_t"].astype(np.float64)
        finite = np.all(np.isfinite(pos) & np.isfinite(vel), axis=(2, 3, 4))
        energy = None
        if reference is not None:
            energy = out["energy_t"].astype(np.float64)
            finite &= np.all(np.isfinite(energy), axis=2)
        keep = finite[..., None, None, None]
        pos, vel = self._restored(state, rows, local, np.where(keep, pos, 0.0),
                                  np.where(keep, vel, 0.0))
        errors = np.zeros(finite.shape)
        if energy is not None:
            errors = total_energy_error_eV(energy, vel, self.masses, reference)
        reasons = _failures(finite, pos, vel, self.masses, limits)
        errors = np.where(reasons == "", errors, np.inf)
        cols = np.arange(len(rows))
        ends = self.ends[segment]
        end_pos, end_vel = pos[:, cols, ends], vel[:, cols, ends]
        if self.restore is not None and energy is not None:
            target = reference[None, :] - energy[:, cols, ends]
            end_vel = energy_restore.restore_kinetic_energy(
                end_pos, end_vel, self.masses, *self.restore,
                np.where(np.isfinite(target), target, 0.0))
        width = int(self.n_frames[segment].max())
        return SegmentPrediction(
            rows=rows, positions=pos[:, :, :width], velocities=vel[:, :, :width],
            potential_eV=None if energy is None else energy[:, :, :width],
            end_positions=end_pos, end_velocities=end_vel, errors_eV=errors,
            failures=self._failure_texts(errors, reasons, segment))

    def _failure_texts(self, errors: np.ndarray, reasons: np.ndarray,
                       segment: np.ndarray) -> list[str | None]:
        """Per column, why its best member failed when every member did, else None."""
        texts: list[str | None] = [None] * errors.shape[1]
        for a in np.flatnonzero(~np.isfinite(errors.min(axis=0))):
            t0 = segment[a] * self.segment_fs
            texts[a] = (f"{reasons[np.argmin(errors[:, a]), a]} between t = {t0:g} and "
                        f"{t0 + self.segment_fs:g} fs")
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
                   segment_fs: float) -> tuple[np.ndarray, int, int]:
    """One segment's local times to predict: its frames, then the check times that are
    not already frames (within ``TIME_RTOL`` · L).  Each time is predicted once, so
    frames every 0.5 fs with checks every 1 fs cost 20 network rows per segment, not 30.

    frames_fs: (F,) fs from the segment's start; checks_fs: (C,) fs, the last one L, the
    segment length ``segment_fs``.  Returns (times (F + C') fs, F, column of the end L).
    """
    frames = np.clip(frames_fs, 0.0, segment_fs)
    slack = TIME_RTOL * segment_fs
    match = np.abs(checks_fs[:, None] - frames[None, :]) <= slack
    extra = checks_fs[~match.any(axis=1)]
    times = np.concatenate([frames, extra])
    end = int(np.flatnonzero(np.abs(times - segment_fs) <= slack)[0])
    return times, frames.size, end


def _failures(finite: np.ndarray, pos: np.ndarray, vel: np.ndarray, masses: np.ndarray,
              limits: np.ndarray) -> np.ndarray:
    """Why each member's prediction of each trajectory failed: (M, A) str, "" when it did not."""
    extent = np.max(_extent_A(pos, masses), axis=-1)
    speed = np.max(np.linalg.norm(vel, axis=-1), axis=(-2, -1))
    reasons = np.full(finite.shape, "", dtype=object)
    reasons[speed > MAX_SPEED_A_PER_FS] = f"an atom faster than {MAX_SPEED_A_PER_FS} Å/fs"
    reasons[extent > limits[None, :]] = "exploding geometry"
    reasons[~finite] = "non-finite prediction"
    return reasons


def _trajectory(state: UnrollState, b: int, frames: np.ndarray, desc, masses: np.ndarray,
                potential0: np.ndarray | None, info: dict) -> Trajectory:
    """Trajectory ``b``: the initial frame, then every accepted segment (views of the run's
    arrays, no copies)."""
    n, done = state.n_frames(b), int(state.segment[b])
    members = state.member[b, :done]
    potential = None
    if potential0 is not None:
        state.potential_eV[b, 0] = potential0[members[0] if done else 0, b]
        potential = state.potential_eV[b, :n]
    info = dict(info, segment_members=members.tolist(), backtracks=int(state.backtracks[b]),
                segments_over_threshold=np.flatnonzero(state.over_threshold[b]).tolist())
    if potential0 is not None:
        info["segment_energy_error_eV"] = state.error_eV[b, :done].tolist()
    if state.failure[b] is not None:
        info["failure"] = f"trajectory {b}: {state.failure[b]}"
    velocities = state.velocities[b, :n]
    return Trajectory(time_fs=frames[:n], positions=state.positions[b, :n],
                      velocities=velocities, atomic_numbers=np.asarray(desc.atomic_numbers),
                      masses=masses, potential_energy=potential,
                      kinetic_energy=mom.kinetic_energy_eV(velocities, masses), info=info)
