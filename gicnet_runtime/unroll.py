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
trajectories over the threshold (rules 2-4) are handled one by one.  Accepted frames go
straight into preallocated arrays of the whole run (the member in use; a step back
rewrites the previous segment's frames), so memory is the trajectories themselves plus
every member's prediction of each trajectory's last accepted segment.  Members are ranked
by increasing error, ties in member order.
"""

from __future__ import annotations

import dataclasses

import numpy as np


#: dtype of the stored output frames: the network's own precision (float32, ~1e-7 Å),
#: which halves a run's memory; segment starts, momenta and energy restoration stay float64.
FRAME_DTYPE = np.float32


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
        positions, velocities: (B, T, N, 3) accepted frames (T = frame_start[-1]), float32
            (``FRAME_DTYPE``); frame 0 holds the initial state; only frames before
            ``frame_start[segment]`` are set.
        potential_eV: (B, T) eV or None; frame 0 is filled in by the caller at the end.
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
        n_frames = int(self.frame_start[-1])
        self.positions = np.empty((n_batch, n_frames, n_atoms, 3), FRAME_DTYPE)
        self.velocities = np.empty((n_batch, n_frames, n_atoms, 3), FRAME_DTYPE)
        self.positions[:, 0], self.velocities[:, 0] = positions0, velocities0
        self.potential_eV = np.full((n_batch, n_frames), np.nan) if has_energy else None
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
        """Use the member of rank ``rank`` for the last accepted segment of ``b``: its
        frames replace those in the output."""
        self.last_rank[b] = rank
        rows = np.array([b])
        member = self.last_member(rows)
        self._write(self.last, rows, member, self.segment[rows] - 1, rows)

    def _accept(self, prediction: SegmentPrediction, cols: np.ndarray) -> None:
        """Accept the best member of columns ``cols`` of ``prediction`` (rule 1 and 3)."""
        if cols.size == 0:
            return
        rows = prediction.rows[cols]
        member = np.argmin(prediction.errors_eV[:, cols], axis=0)
        self._write(prediction, cols, member, self.segment[rows], rows)
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
        if self.attempts:  # rare: only trajectories that were over the threshold
            for b in np.intersect1d(rows, list(self.attempts)):
                del self.attempts[int(b)]

    def _write(self, prediction: SegmentPrediction, cols: np.ndarray, member: np.ndarray,
               segment: np.ndarray, rows: np.ndarray) -> None:
        """Frames of ``member`` (per column) of ``prediction``'s columns ``cols`` become
        segment ``segment`` of trajectories ``rows``, with their member and error."""
        self.member[rows, segment] = member
        self.error_eV[rows, segment] = prediction.errors_eV[member, cols]
        for s in np.unique(segment):  # rows share few distinct segments (usually one)
            pick = segment == s
            start, stop = self.frame_start[s], self.frame_start[s + 1]
            r, c, m = rows[pick], cols[pick], member[pick]
            self.positions[r, start:stop] = prediction.positions[m, c, :stop - start]
            self.velocities[r, start:stop] = prediction.velocities[m, c, :stop - start]
            if self.potential_eV is not None:
                self.potential_eV[r, start:stop] = prediction.potential_eV[m, c, :stop - start]

    def n_frames(self, b: int) -> int:
        """Frames of trajectory ``b`` set so far (its initial state included)."""
        return int(self.frame_start[self.segment[b]])
