"""The state of B trajectories while they are unrolled segment by segment, as arrays.

Each segment of each trajectory is predicted by every ensemble member (a
:class:`SegmentPrediction` holds that for a batch of trajectories).
:meth:`UnrollState.offer` decides what to do with it, following the original GICnet's
backtracking:

1. If the best member's total-energy error is within the threshold, that member's
   prediction is accepted and its end state starts the next segment.
2. Otherwise the runtime steps back one segment: the previous segment switches to its
   next-ranked member whose own error is within the threshold, and the current segment
   is predicted again from that member's end state.
3. When the previous segment has no such member left (or there is none: the first
   segment, a single model), the best of all attempts at the current segment is
   accepted, the previous segment restored to the member that attempt started from, and
   the segment is recorded as over the threshold.
4. When every member of every attempt failed numerically (non-finite values or an
   exploding geometry), the trajectory stops; its frames up to the segment's start stay.

Stepping back is one segment deep, so every segment is predicted at most M times
(M members) and the unrolling always ends.

The common case, rule 1, is decided for all trajectories of a batch at once; only the
trajectories over the threshold (rules 2-4) are handled one by one.  Members are ranked by
increasing error, ties in member order.

The state holds no output frames.  A segment can still change while it is the last
accepted one (rules 2 and 3 switch its member), and never after the next one is
accepted; so its frames are handed to ``emit`` (a :class:`FrameSink`'s writer, set by the
caller) exactly then, or when the trajectory ends.  Memory is therefore every member's
prediction of each trajectory's last accepted segment plus a few numbers per segment,
whatever the length of the run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

#: dtype of the output frames: the network's own precision (float32, ~1e-7 Å), which
#: halves a run's memory and files; segment starts, momenta and energy restoration stay
#: float64.
FRAME_DTYPE = np.float32

#: ``emit(rows, segment, positions, velocities, potential_eV)``: the final frames of
#: segment ``segment`` of trajectories ``rows`` (A,): (A, F, N, 3) Å, Å/fs, (A, F) eV or
#: None, F the segment's frame count.
Emit = Callable[[np.ndarray, int, np.ndarray, np.ndarray, "np.ndarray | None"], None]


@dataclasses.dataclass
class SegmentPrediction:
    """Every member's prediction of the current segment of A trajectories (M members, F
    frames: the largest frame count among the rows; rows with fewer are padded).

    Attributes:
        rows: (A,) indices of the trajectories in the run.
        positions, velocities: (M, A, F, N, 3) Å, Å/fs, momentum-restored frames.
        potential_eV: (M, A, F) eV, or None for models without energy.
        end_positions, end_velocities: (M, A, N, 3) the state that starts the next segment.
        errors_eV: (M, A) total-energy error of each member (inf: failed).
        failures: (A,) why the best member failed where every member did, else None.
    """

    rows: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    potential_eV: np.ndarray | None
    end_positions: np.ndarray
    end_velocities: np.ndarray
    errors_eV: np.ndarray
    failures: list[str | None]

    def take(self, a: int) -> SegmentPrediction:
        """Column ``a`` alone (a copy, as a batch of one)."""
        cut = slice(a, a + 1)
        return SegmentPrediction(
            rows=self.rows[cut].copy(), positions=self.positions[:, cut].copy(),
            velocities=self.velocities[:, cut].copy(),
            potential_eV=None if self.potential_eV is None else self.potential_eV[:, cut].copy(),
            end_positions=self.end_positions[:, cut].copy(),
            end_velocities=self.end_velocities[:, cut].copy(),
            errors_eV=self.errors_eV[:, cut].copy(), failures=self.failures[a:a + 1])


class UnrollState:
    """B trajectories being unrolled: accepted frames, per-segment choices, attempts.

    Attributes:
        positions0, velocities0: (B, N, 3) Å, Å/fs, the initial conditions.
        momentum0 (B, 3) amu·Å/fs, angular0 (B, 3) amu·Å²/fs, com0 (B, 3) Å: the
            conserved targets.
        frame_start: (S + 1,) index of the first frame of each segment in the output
            (frame 0 is the initial state; segment s has frames frame_start[s] ..
            frame_start[s + 1] - 1).
        segment: (B,) index of the segment to predict next.
        member: (B, S) member used for each accepted segment (-1: not yet).
        error_eV: (B, S) total-energy error of the member used, eV.
        over_threshold: (B, S) accepted above the energy threshold (rule 3).
        backtracks: (B,) how often a previous segment switched member (rule 2).
        failure: (B,) why a trajectory stopped early, or None; ``failed`` (B,) whether it did.
        last: every member's prediction of each trajectory's last accepted segment
            (rows 0..B-1), for stepping back; ``last_rank`` (B,) the rank of its member in use.
        attempts: per trajectory over the threshold, the attempts at its current segment:
            (rank of the previous segment's member it started from, prediction).
        emit: where final segments go (:data:`Emit`); None drops them (tests of the logic).
        has_energy: whether predictions carry potential energies.
    """

    def __init__(self, positions0: np.ndarray, velocities0: np.ndarray,
                 momentum0: np.ndarray, angular0: np.ndarray, com0: np.ndarray,
                 frames_per_segment: np.ndarray, n_members: int, has_energy: bool) -> None:
        n_batch, n_atoms = positions0.shape[:2]
        counts = np.asarray(frames_per_segment, dtype=np.int64)
        n_segments, width = counts.size, int(counts.max())
        self.positions0, self.velocities0 = positions0, velocities0
        self.momentum0, self.angular0, self.com0 = momentum0, angular0, com0
        self.frame_start = np.concatenate([[1], 1 + np.cumsum(counts)])
        self.has_energy = bool(has_energy)
        self.emit: Emit | None = None
        #: The frame sink's (header, arrays) when restored from a checkpoint, else None.
        self.sink_mark: tuple[dict, dict[str, np.ndarray]] | None = None
        self.segment = np.zeros(n_batch, dtype=np.int64)
        self.member = np.full((n_batch, n_segments), -1, dtype=np.int64)
        self.error_eV = np.full((n_batch, n_segments), np.nan)
        self.over_threshold = np.zeros((n_batch, n_segments), dtype=bool)
        self.backtracks = np.zeros(n_batch, dtype=np.int64)
        self.failure: list[str | None] = [None] * n_batch
        self.failed = np.zeros(n_batch, dtype=bool)
        shape = (n_members, n_batch)
        self.last = SegmentPrediction(
            rows=np.arange(n_batch),
            positions=np.zeros(shape + (width, n_atoms, 3)),
            velocities=np.zeros(shape + (width, n_atoms, 3)),
            potential_eV=np.zeros(shape + (width,)) if has_energy else None,
            end_positions=np.zeros(shape + (n_atoms, 3)),
            end_velocities=np.zeros(shape + (n_atoms, 3)),
            errors_eV=np.zeros(shape), failures=[None] * n_batch)
        self.last_rank = np.zeros(n_batch, dtype=np.int64)
        self.attempts: dict[int, list[tuple[int, SegmentPrediction]]] = {}

    @property
    def n_segments(self) -> int:
        return self.member.shape[1]

    def active(self) -> np.ndarray:
        """Indices of the trajectories still to be unrolled."""
        return np.flatnonzero(~self.failed & (self.segment < self.n_segments))

    def starts(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where the next segment of each of ``rows`` starts: positions, velocities
        (A, N, 3) Å, Å/fs (the initial state, or the end state of the member in use of
        the last accepted segment)."""
        member = self.last_member(rows)
        first = (self.segment[rows] == 0)[:, None, None]
        pos = np.where(first, self.positions0[rows], self.last.end_positions[member, rows])
        vel = np.where(first, self.velocities0[rows], self.last.end_velocities[member, rows])
        return pos, vel

    def last_member(self, rows: np.ndarray) -> np.ndarray:
        """(A,) member in use of the last accepted segment of each of ``rows``."""
        order = np.argsort(self.last.errors_eV[:, rows], axis=0, kind="stable")
        return order[self.last_rank[rows], np.arange(len(rows))]

    def offer(self, prediction: SegmentPrediction, threshold_eV: float) -> int:
        """Take every member's prediction of the current segment of ``prediction.rows``;
        returns how many segments were accepted (rules in the module docstring)."""
        errors = prediction.errors_eV
        best = errors[np.argmin(errors, axis=0), np.arange(errors.shape[1])]
        good = np.flatnonzero(best <= threshold_eV)
        self._accept(prediction, good)
        accepted = good.size
        for a in np.flatnonzero(~(best <= threshold_eV)):
            accepted += self._over_threshold(prediction.take(int(a)), threshold_eV)
        return accepted

    def _over_threshold(self, prediction: SegmentPrediction, threshold_eV: float) -> int:
        """Rules 2-4 for one trajectory (a batch of one); 1 when its segment was accepted."""
        b = int(prediction.rows[0])
        has_previous = self.segment[b] > 0
        attempts = self.attempts.setdefault(b, [])
        attempts.append((int(self.last_rank[b]) if has_previous else 0, prediction))
        if has_previous and self._switch_last(b, threshold_eV):
            self.backtracks[b] += 1
            return 0
        rank, best = min(attempts, key=lambda a: float(np.min(a[1].errors_eV)))
        if not np.isfinite(np.min(best.errors_eV)):
            self.failure[b], self.failed[b] = best.failures[0], True
            if has_previous:
                self._emit_last(np.array([b]))
            return 0
        if has_previous:
            self._use_last_rank(b, rank)
        self.over_threshold[b, self.segment[b]] = True
        self._accept(best, np.array([0]))
        return 1

    def _switch_last(self, b: int, threshold_eV: float) -> bool:
        """Rule 2: the last accepted segment of trajectory ``b`` switches to its next-ranked
        member within the threshold, if any."""
        errors = self.last.errors_eV[:, b]
        order = np.argsort(errors, kind="stable")
        for rank in range(int(self.last_rank[b]) + 1, len(order)):
            if errors[order[rank]] <= threshold_eV:
                self._use_last_rank(b, rank)
                return True
        return False

    def _use_last_rank(self, b: int, rank: int) -> None:
        """Use the member of rank ``rank`` for the last accepted segment of ``b`` (whose
        frames are emitted only once it is final)."""
        self.last_rank[b] = rank
        rows = np.array([b])
        member = self.last_member(rows)
        self._record(self.last, rows, member, self.segment[rows] - 1, rows)

    def _accept(self, prediction: SegmentPrediction, cols: np.ndarray) -> None:
        """Accept the best member of columns ``cols`` of ``prediction`` (rule 1 and 3)."""
        if cols.size == 0:
            return
        rows = prediction.rows[cols]
        member = np.argmin(prediction.errors_eV[:, cols], axis=0)
        self._emit_last(rows[self.segment[rows] > 0])  # the previous segment is final now
        self._record(prediction, cols, member, self.segment[rows], rows)
        width = prediction.positions.shape[2]
        last = self.last  # padding beyond a segment's frames is never read
        last.positions[:, rows, :width] = prediction.positions[:, cols]
        last.velocities[:, rows, :width] = prediction.velocities[:, cols]
        if last.potential_eV is not None:
            last.potential_eV[:, rows, :width] = prediction.potential_eV[:, cols]
        last.end_positions[:, rows] = prediction.end_positions[:, cols]
        last.end_velocities[:, rows] = prediction.end_velocities[:, cols]
        last.errors_eV[:, rows] = prediction.errors_eV[:, cols]
        self.last_rank[rows] = 0
        self.segment[rows] += 1
        self._emit_last(rows[self.segment[rows] == self.n_segments])  # runs that are done
        if self.attempts:  # rare: only trajectories that were over the threshold
            for b in np.intersect1d(rows, list(self.attempts)):
                del self.attempts[int(b)]

    def _record(self, prediction: SegmentPrediction, cols: np.ndarray, member: np.ndarray,
                segment: np.ndarray, rows: np.ndarray) -> None:
        """Member ``member`` (per column) of ``prediction``'s columns ``cols`` is used for
        segment ``segment`` of trajectories ``rows``: record it and its error."""
        self.member[rows, segment] = member
        self.error_eV[rows, segment] = prediction.errors_eV[member, cols]

    def _emit_last(self, rows: np.ndarray) -> None:
        """Hand the last accepted segment of ``rows``, now final, to ``emit``."""
        if rows.size == 0 or self.emit is None:
            return
        member = self.last_member(rows)
        segment = self.segment[rows] - 1
        for s in np.unique(segment):  # rows share few distinct segments (usually one)
            pick = segment == s
            count = int(self.frame_start[s + 1] - self.frame_start[s])
            r, m = rows[pick], member[pick]
            potential = (None if self.last.potential_eV is None
                         else self.last.potential_eV[m, r, :count])
            self.emit(r, int(s), self.last.positions[m, r, :count],
                      self.last.velocities[m, r, :count], potential)

    def n_frames(self, b: int) -> int:
        """Frames of trajectory ``b`` accepted so far (its initial state included)."""
        return int(self.frame_start[self.segment[b]])

    def emitted_frames(self) -> np.ndarray:
        """(B,) frames of each trajectory that are final: the initial state and every
        segment handed to ``emit`` (the last accepted segment is held back while it may
        still change); a trajectory that stopped in its first segment keeps its initial
        state alone."""
        done = self.failed | (self.segment == self.n_segments)
        final = np.where(done, self.segment, np.maximum(self.segment - 1, 0))
        return np.where(final > 0, self.frame_start[final], done.astype(np.int64))
