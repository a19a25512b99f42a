"""Long trajectories: unrolling a 4D model segment by segment.

A GICnet model predicts any time in [0, tc] from a start state; a trajectory of any
length is a chain of segments of length L <= tc (``segment_fs``; by default the model's
``default_segment_fs``) in which each segment's end state is the next one's start.  Per
segment, for all trajectories at once (one batch per member):

1. every ensemble member predicts the segment at the output frames that fall in it and
   at ``ENERGY_CHECKS_PER_SEGMENT`` evenly spaced check times (the last is the end, L),
   each distinct time once (check times that are also frames are not predicted twice);
2. the centre of mass is put back on its straight line and the velocities are given
   back the initial linear and angular momentum (:mod:`gicnet_runtime.unroll.momentum`);
3. members whose prediction is non-finite, flies apart (an atom more than
   ``EXPLOSION_MARGIN_A`` beyond the initial molecule's extent) or moves faster than
   ``MAX_SPEED_A_PER_FS`` count as failed; so do, unless ``unphysical="warn"``, those
   that break the physical-sanity checks of :mod:`gicnet_runtime.core.sanity` (a bond
   outside its band, a frozen or overheated molecule);
4. members are ranked by total-energy error (:mod:`gicnet_runtime.core.ensemble`) and
   :class:`gicnet_runtime.unroll.state.UnrollState` accepts, steps back or stops each
   trajectory (all trajectories within the threshold at once);
5. with energy restoration (the default for models with energy), each member's end state
   gets the trajectory's initial total energy back before it can start the next segment
   (:mod:`gicnet_runtime.unroll.energy_restore`).

Frames go to a frame sink once final (:mod:`gicnet_runtime.unroll.sinks`): kept in
memory by :func:`propagate`, which returns one :class:`Trajectory` per initial condition
(frames at 0, dt, 2 dt, ... <= duration), or streamed to a file by ``gicnet propagate``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from gicnet_runtime.core import sanity
from gicnet_runtime.core.contract import ENERGY_T
from gicnet_runtime.core.description import ModelDescription
from gicnet_runtime.core.ensemble import (
    ENERGY_THRESHOLD_EV,
    reference_energy_eV,
)
from gicnet_runtime.core.icdef import ICDefinition
from gicnet_runtime.core.timegrid import frame_times_fs, segment_of, unroll_segment_fs
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError, ModelError
from gicnet_runtime.unroll import momentum as mom
from gicnet_runtime.unroll.segment import (  # noqa: F401  (constants re-exported)
    ENERGY_CHECKS_PER_SEGMENT,
    EXPLOSION_MARGIN_A,
    MAX_SPEED_A_PER_FS,
    SegmentStep,
    aligned_run,
    extent_A,
)
from gicnet_runtime.unroll.sinks import FrameSink, MemorySink
from gicnet_runtime.unroll.state import UnrollState

if TYPE_CHECKING:  # the model module imports this one
    from gicnet_runtime.core.model import Model

def propagate(model: Model, positions: np.ndarray, velocities: np.ndarray,
              duration_fs: float, dt_fs: float, **options) -> list[Trajectory]:
    """Unroll trajectories from B initial conditions with every frame kept in memory.

    Takes the arguments of :func:`unroll` except ``sink``; returns B trajectories (frames
    at 0, dt, ... <= duration; kinetic energy from the velocities, potential energy from
    the model when it has one, the run's settings and per-segment choices in ``info``).
    One that failed numerically ends at its last good segment and says why in
    ``info["failure"]``.
    """
    sinks = []

    def memory(*shape) -> MemorySink:
        sinks.append(MemorySink(*shape))
        return sinks[0]

    runs = unroll(model, positions, velocities, duration_fs, dt_fs, memory, **options)
    desc = model.description
    z, masses = np.asarray(desc.atomic_numbers), np.asarray(desc.masses_amu, dtype=np.float64)
    times = frame_times_fs(duration_fs, dt_fs)
    trajectories = [sinks[0].trajectory(b, run.n_frames, times, z, masses, run.info)
                    for b, run in enumerate(runs)]
    if options.get("unphysical") == "warn":
        for b, traj in enumerate(trajectories):
            note_unphysical(b, [traj], traj.info)
    return trajectories


def note_unphysical(b: int, blocks, info: dict) -> None:
    """With ``unphysical="warn"``: record in ``info["unphysical"]`` the first
    physical-sanity violation of trajectory ``b``, whose frames ``blocks`` (Trajectory
    blocks in time order, frame 0 the initial state) are final
    (:func:`gicnet_runtime.core.sanity.check_trajectory`)."""
    found = sanity.check_trajectory(blocks)
    if found is not None:
        info["unphysical"] = f"trajectory {b}: {found}"


@dataclasses.dataclass(frozen=True)
class UnrolledRun:
    """What :func:`unroll` reports of one trajectory: ``n_frames`` final frames went to
    the sink; ``info`` holds the run's settings and the trajectory's per-segment choices."""

    n_frames: int
    info: dict


def unroll(model: Model, positions: np.ndarray, velocities: np.ndarray,
           duration_fs: float, dt_fs: float, sink: Callable[..., FrameSink], *,
           energy_threshold_eV: float = ENERGY_THRESHOLD_EV,
           progress: Callable[[int], None] | None = None,
           state: UnrollState | None = None,
           on_step: Callable[[UnrollState, FrameSink], None] | None = None,
           restore_energy: bool | None = None,
           segment_fs: float | None = None, unphysical: str = "error",
           first_index: int = 0) -> list[UnrolledRun]:
    """Unroll trajectories from B initial conditions (see the module docstring), handing
    every frame, once final, to a frame sink (:mod:`gicnet_runtime.unroll.sinks`).

    Args:
        model: the model (:class:`gicnet_runtime.core.model.Model`): one network or an
            ensemble, whose members' outputs come stacked from ``model.run``.
        positions: (B, N, 3) Å, validated.
        velocities: (B, N, 3) Å/fs, validated.
        duration_fs: length of the trajectories, fs.
        dt_fs: spacing of the output frames, fs (any value, independent of tc).
        sink: makes the frame sink, called as ``sink(B, T, N, has_energy)`` (T frames per
            trajectory); e.g. :class:`MemorySink` or a partial of
            :class:`gicnet_runtime.io.spool.FrameSpool`.
        energy_threshold_eV: largest acceptable total-energy error of a segment, eV.
        progress: called with the number of newly accepted segments (of B·S in all);
            when continuing from ``state``, first with the segments it already holds.
        state: the unrolling state saved by an interrupted run of these same arguments
            (:mod:`gicnet_runtime.unroll.checkpoint`), with its sink's mark, to continue
            from; None starts afresh.
        on_step: called with the state and the sink after every batched step
            (checkpoints).
        restore_energy: give each segment's end state, which starts the next segment, the
            trajectory's initial total energy (model potential plus kinetic) by scaling its
            stretch-and-bend velocities (:mod:`gicnet_runtime.unroll.energy_restore`);
            None: whenever the model has energy.  The frames themselves stay as predicted.
        segment_fs: length of the unrolled segments, fs, at most the model's tc (None: the
            model's ``default_segment_fs``): shorter segments use the model's more accurate
            early times, at the cost of more network calls per fs.
        unphysical: "error": a segment that breaks a physical-sanity check (bonds,
            temperature: :mod:`gicnet_runtime.core.sanity`) fails like a non-finite one;
            "warn": it does not (:func:`note_unphysical` can report it afterwards).
        first_index: the number messages give trajectory 0 ("trajectory 12: ..."): the
            first's place in a larger run of which these B are a shard.

    Returns:
        One :class:`UnrolledRun` per trajectory.
    """
    run = Unrolling(model, positions, velocities, duration_fs, dt_fs, sink,
                    energy_threshold_eV=energy_threshold_eV, state=state,
                    restore_energy=restore_energy, segment_fs=segment_fs, unphysical=unphysical,
                    first_index=first_index)
    if progress is not None and state is not None:
        progress(int(run.state.segment.sum()))
    while not run.done:
        accepted = run.step()
        if progress is not None and accepted:
            progress(accepted)
        if on_step is not None:
            on_step(run.state, run.sink)
    return run.finish()


class Unrolling:
    """One unrolling run as an explicit state and a step over it.

    ``Unrolling(model, positions, velocities, duration_fs, dt_fs, sink, ...)`` takes the
    arguments of :func:`unroll` (``state``: a checkpoint's, to continue from); then
    :meth:`step` until :attr:`done`, and :meth:`finish`.  Between steps, :attr:`state`
    and :attr:`sink` are what a checkpoint saves, and the sink has every frame that is
    final so far.

    Attributes:
        state: the :class:`UnrollState`.
        sink: the frame sink made by ``sink(B, T, N, has_energy)``.
        frames_fs: (T,) the output times, fs.
    """

    def __init__(self, model: Model, positions: np.ndarray, velocities: np.ndarray,
                 duration_fs: float, dt_fs: float, sink: Callable[..., FrameSink], *,
                 energy_threshold_eV: float = ENERGY_THRESHOLD_EV,
                 state: UnrollState | None = None, restore_energy: bool | None = None,
                 segment_fs: float | None = None, unphysical: str = "error",
                 first_index: int = 0) -> None:
        desc = model.description
        masses = np.asarray(desc.masses_amu, dtype=np.float64)
        frames = frame_times_fs(duration_fs, dt_fs)
        if frames.size < 2:
            raise InputError(f"dt_fs {dt_fs} is longer than duration_fs {duration_fs}: "
                             "no frames")
        if not energy_threshold_eV > 0:
            raise InputError(f"energy threshold must be positive, got {energy_threshold_eV} eV")
        restore_energy, segment_fs = unroll_settings(desc, restore_energy, segment_fs)
        sanity.check_mode(unphysical)
        frame_segment = segment_of(frames, segment_fs)
        # frame_segment never decreases: segment s holds frames[bounds[s]:bounds[s + 1]]
        bounds = np.searchsorted(frame_segment, np.arange(int(frame_segment[-1]) + 2))
        per_segment = [frames[a:b] for a, b in itertools.pairwise(bounds)]
        self.frames_fs, self.threshold_eV = frames, energy_threshold_eV
        self.first_index = int(first_index)
        self.sink = sink(positions.shape[0], frames.size, positions.shape[1], desc.has_energy)
        self.state = _start(state, self.sink, positions, velocities, masses, per_segment, model)
        self.potential0 = _initial_potential(model, positions, velocities)
        self.state.emit = _Emitter(self.sink, self.state, positions, velocities,
                                   self.potential0)
        self.reference = (None if self.potential0 is None
                          else reference_energy_eV(self.potential0, velocities, masses))
        self.limits = extent_A(positions, masses) + EXPLOSION_MARGIN_A
        bounds = (sanity.Bounds.initial(positions, velocities, masses, desc.atomic_numbers)
                  if unphysical == "error" else None)
        self.segment_step = SegmentStep(model, masses, segment_fs, per_segment,
                                        ICDefinition(desc.ic_rows) if restore_energy else None,
                                        bounds, positions.shape[0])
        self.info = {"engine": "gicnet", "models": [p.name for p in model.paths],
                     "n_members": model.n_members, "tc_fs": desc.tc_fs,
                     "segment_fs": segment_fs, "dt_fs": float(dt_fs),
                     "duration_fs": float(duration_fs),
                     "energy_threshold_eV": float(energy_threshold_eV),
                     "restore_energy": bool(restore_energy),
                     "reversal_share": desc.reversal_share}

    @property
    def done(self) -> bool:
        """Whether every trajectory is finished or stopped."""
        return self.state.active().size == 0

    def step(self) -> int:
        """Predict the current segment of every active trajectory in one batch and let the
        state accept, step back or stop each; returns the segments accepted."""
        active = self.state.active()
        reference = None if self.reference is None else self.reference[active]
        prediction = self.segment_step.predict(self.state, active, reference,
                                               self.limits[active])
        return self.state.offer(prediction, self.threshold_eV)

    def finish(self) -> list[UnrolledRun]:
        """After the last step: the initial frame of trajectories that stopped in their
        first segment, and one :class:`UnrolledRun` per trajectory."""
        state = self.state
        state.emit.initial_frames(np.flatnonzero(state.failed & (state.segment == 0)))
        counts = state.emitted_frames()
        return [UnrolledRun(int(counts[b]),
                            _trajectory_info(state, b, self.info, self.potential0 is not None,
                                             self.first_index))
                for b in range(state.segment.size)]


def _start(state: UnrollState | None, out: FrameSink, positions: np.ndarray,
           velocities: np.ndarray, masses: np.ndarray, per_segment: list[np.ndarray],
           model: Model) -> UnrollState:
    """A fresh state (and sink), or the checkpoint's ``state`` with its sink restored."""
    if state is None:
        out.begin()
        return UnrollState(positions, velocities, mom.linear_momentum(velocities, masses),
                           mom.angular_momentum(positions, velocities, masses),
                           mom.centre_of_mass(positions, masses),
                           np.array([f.size for f in per_segment]), model.n_members,
                           model.description.has_energy)
    if state.positions0.shape != positions.shape or state.n_segments != len(per_segment):
        raise InputError(f"saved state holds {state.positions0.shape[0]} trajectories of "
                         f"{state.n_segments} segments, not {positions.shape[0]} of "
                         f"{len(per_segment)}")
    if state.sink_mark is None:
        raise InputError("the saved state carries no frame-sink mark")
    out.restore(*state.sink_mark)
    return state


class _Emitter:
    """The state's ``emit``: a final segment's frames go to the sink at their place in
    the output, the initial state first when the segment is the first one (with the
    potential energy of the member that predicted that segment)."""

    def __init__(self, out: FrameSink, state: UnrollState, positions0: np.ndarray,
                 velocities0: np.ndarray, potential0: np.ndarray | None) -> None:
        self.out, self.state = out, state
        self.positions0, self.velocities0, self.potential0 = positions0, velocities0, potential0

    def __call__(self, rows, segment, positions, velocities, potential) -> None:
        if segment == 0:
            self.initial_frames(rows, self.state.member[rows, 0])
        self.out.write(rows, int(self.state.frame_start[segment]), positions, velocities,
                       potential)

    def initial_frames(self, rows: np.ndarray, member: np.ndarray | None = None) -> None:
        """Frame 0 of trajectories ``rows``: the initial state (member: whose potential
        energy it gets, default 0)."""
        if rows.size == 0:
            return
        member = np.zeros(rows.size, dtype=np.int64) if member is None else member
        potential = (None if self.potential0 is None
                     else self.potential0[member, rows][:, None])
        self.out.write(rows, 0, self.positions0[rows][:, None], self.velocities0[rows][:, None],
                       potential)


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
    run = aligned_run(model, positions.shape[0])
    potential = run(positions, velocities, zero)[ENERGY_T][:, :, 0].astype(np.float64)
    if not np.all(np.isfinite(potential)):
        bad = np.argwhere(~np.isfinite(potential))[0]
        raise ModelError(f"member {bad[0]} of the model ({', '.join(p.name for p in model.paths)}"
                         f") gives a non-finite potential energy at t = 0 for initial "
                         f"condition {bad[1]}")
    return potential


def _trajectory_info(state: UnrollState, b: int, info: dict, has_energy: bool,
                     first_index: int = 0) -> dict:
    """Trajectory ``b``'s ``info``: the run's settings and its per-segment choices
    (messages number it ``first_index + b``)."""
    done = int(state.segment[b])
    info = dict(info, segment_members=state.member[b, :done].tolist(),
                backtracks=int(state.backtracks[b]),
                segments_over_threshold=np.flatnonzero(state.over_threshold[b]).tolist())
    if has_energy:
        info["segment_energy_error_eV"] = state.error_eV[b, :done].tolist()
    if state.failure[b] is not None:
        info["failure"] = f"trajectory {first_index + b}: {state.failure[b]}"
    return info
