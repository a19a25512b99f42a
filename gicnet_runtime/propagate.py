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
   :class:`gicnet_runtime.unroll.Unroll` accepts, steps back or stops the trajectory;
5. with energy restoration (the default for models with energy), each member's end state
   gets the trajectory's initial total energy back before it can start the next segment
   (:mod:`gicnet_runtime.energy_restore`).

The result is one :class:`Trajectory` per initial condition, with frames at 0, dt, 2 dt,
... <= duration, kinetic energy from the velocities, potential energy from the model
(when it has one) and the per-segment choices in ``info``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from gicnet_runtime import energy_restore, internal
from gicnet_runtime import momentum as mom
from gicnet_runtime.description import ModelDescription
from gicnet_runtime.ensemble import (
    ENERGY_THRESHOLD_EV,
    Ranking,
    reference_energy_eV,
    total_energy_error_eV,
)
from gicnet_runtime.errors import InputError, ModelError
from gicnet_runtime.icdef import ICDefinition
from gicnet_runtime.timegrid import TIME_RTOL, frame_times_fs, segment_of, unroll_segment_fs
from gicnet_runtime.trajectory import Trajectory
from gicnet_runtime.unroll import Candidate, Unroll

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
              state: Sequence[Unroll] | None = None,
              on_step: Callable[[list[Unroll]], None] | None = None,
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
    unrolls = [Unroll(p, v, mom.linear_momentum(v, masses), mom.angular_momentum(p, v, masses),
                      mom.centre_of_mass(p, masses)) for p, v in zip(positions, velocities)]
    if state is not None:
        if len(state) != len(unrolls):
            raise InputError(f"saved state holds {len(state)} trajectories, not {len(unrolls)}")
        unrolls = list(state)
        if progress is not None:
            progress(sum(u.segment for u in unrolls))
    potential0 = _initial_potential(model, positions, velocities)
    reference = (reference_energy_eV(potential0, velocities, masses)
                 if potential0 is not None else None)
    limits = _extent_A(positions, masses) + EXPLOSION_MARGIN_A
    step = _Step(model, masses, segment_fs, per_segment,
                 ICDefinition(desc.ic_rows) if restore_energy else None)
    while active := [i for i, u in enumerate(unrolls)
                     if u.failure is None and u.segment < len(per_segment)]:
        candidates = step.predict([unrolls[i] for i in active],
                                  None if reference is None else reference[active],
                                  limits[active])
        done = sum(unrolls[i].offer(c, energy_threshold_eV) for i, c in zip(active, candidates))
        if progress is not None and done:
            progress(done)
        if on_step is not None:
            on_step(unrolls)
    info = {"engine": "gicnet", "models": [p.name for p in model.paths],
            "n_members": model.n_members,
            "tc_fs": desc.tc_fs, "segment_fs": segment_fs, "dt_fs": float(dt_fs),
            "duration_fs": float(duration_fs),
            "energy_threshold_eV": float(energy_threshold_eV),
            "restore_energy": bool(restore_energy)}
    return [_trajectory(u, i, desc, masses, potential0, info) for i, u in enumerate(unrolls)]


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
        self.layouts = [_segment_times(frames - s * segment_fs, checks_fs, segment_fs)
                        for s, frames in enumerate(per_segment)]

    def predict(self, unrolls: list[Unroll], reference: np.ndarray | None,
                limits: np.ndarray) -> list[Candidate]:
        """Every member's prediction of each trajectory's current segment."""
        starts = [u.start() for u in unrolls]
        local, n_frames, ends = self._times(unrolls)
        out = self.model.run(np.stack([p for p, _ in starts]), np.stack([v for _, v in starts]),
                             local)
        pos = out["positions_t"].astype(np.float64)
        vel = out["velocities_t"].astype(np.float64)
        finite = np.all(np.isfinite(pos) & np.isfinite(vel), axis=(2, 3, 4))
        energy = None
        if reference is not None:
            energy = out["energy_t"].astype(np.float64)
            finite &= np.all(np.isfinite(energy), axis=2)
        keep = finite[..., None, None, None]
        pos, vel = self._restored(unrolls, local, np.where(keep, pos, 0.0),
                                  np.where(keep, vel, 0.0))
        errors = np.zeros(finite.shape)
        if energy is not None:
            errors = total_energy_error_eV(energy, vel, self.masses, reference)
        reasons = _failures(finite, pos, vel, self.masses, limits)
        errors = np.where(reasons == "", errors, np.inf)
        rows = np.arange(len(unrolls))
        end_pos, end_vel = pos[:, rows, ends], vel[:, rows, ends]
        if self.restore is not None and energy is not None:
            target = reference[None, :] - energy[:, rows, ends]
            end_vel = energy_restore.restore_kinetic_energy(
                end_pos, end_vel, self.masses, *self.restore,
                np.where(np.isfinite(target), target, 0.0))
        return [self._candidate(u, a, n_frames[a], end_pos[:, a], end_vel[:, a], pos, vel,
                                energy, errors, reasons) for a, u in enumerate(unrolls)]

    def _times(self, unrolls: list[Unroll]) -> tuple[np.ndarray, list[int], list[int]]:
        """Local times (A, K) fs (each segment's times from :func:`_segment_times`, padded
        with tc), the number of frames and the column of the end time tc of each row."""
        layouts = [self.layouts[u.segment] for u in unrolls]
        width = max(len(times) for times, _, _ in layouts)
        local = np.full((len(layouts), width), self.segment_fs)
        for a, (times, _, _) in enumerate(layouts):
            local[a, :len(times)] = times
        return local, [n for _, n, _ in layouts], [end for _, _, end in layouts]

    def _restored(self, unrolls: list[Unroll], local: np.ndarray, pos: np.ndarray,
                  vel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centre of mass on its line, initial momenta restored: (M, A, K, N, 3) each."""
        start = np.array([u.segment * self.segment_fs for u in unrolls])
        t = start[:, None] + local
        p0 = np.stack([u.momentum0 for u in unrolls])[:, None, :]
        l0 = np.stack([u.angular0 for u in unrolls])[:, None, :]
        com0 = np.stack([u.com0 for u in unrolls])[:, None, :]
        com = com0 + p0 / self.masses.sum() * t[..., None]
        pos = mom.restore_centre_of_mass(pos, self.masses, com)
        return pos, mom.restore_momentum(pos, vel, self.masses, p0, l0)

    def _candidate(self, u: Unroll, a: int, n_frames: int, end_pos: np.ndarray,
                   end_vel: np.ndarray, pos, vel, energy, errors, reasons) -> Candidate:
        frames = slice(0, n_frames)
        ranking = Ranking(errors[:, a])
        failure = None
        if not np.isfinite(ranking.error_eV):
            t0 = u.segment * self.segment_fs
            failure = (f"{reasons[ranking.member, a]} between t = {t0:g} and "
                       f"{t0 + self.segment_fs:g} fs")
        return Candidate(
            times_fs=self.per_segment[u.segment], positions=pos[:, a, frames],
            velocities=vel[:, a, frames],
            potential_eV=None if energy is None else energy[:, a, frames],
            end_positions=end_pos, end_velocities=end_vel,
            ranking=ranking, members=np.arange(self.model.n_members), failure=failure)


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


def _trajectory(u: Unroll, index: int, desc, masses: np.ndarray,
                potential0: np.ndarray | None, info: dict) -> Trajectory:
    """Assemble one unrolled trajectory: the initial frame, then every accepted segment."""
    parts = [c.frames() for c in u.accepted]
    first = u.accepted[0].member if u.accepted else 0
    times = np.concatenate([[0.0]] + [p[0] for p in parts])
    positions = np.concatenate([u.positions0[None]] + [p[1] for p in parts])
    velocities = np.concatenate([u.velocities0[None]] + [p[2] for p in parts])
    potential = None
    if potential0 is not None:
        potential = np.concatenate([[potential0[first, index]]] + [p[3] for p in parts])
    info = dict(info, segment_members=[c.member for c in u.accepted],
                backtracks=u.backtracks, segments_over_threshold=list(u.over_threshold))
    if potential0 is not None:
        info["segment_energy_error_eV"] = [c.error_eV for c in u.accepted]
    if u.failure is not None:
        info["failure"] = f"trajectory {index}: {u.failure}"
    return Trajectory(time_fs=times, positions=positions, velocities=velocities,
                      atomic_numbers=np.asarray(desc.atomic_numbers), masses=masses,
                      potential_energy=potential,
                      kinetic_energy=mom.kinetic_energy_eV(velocities, masses), info=info)
