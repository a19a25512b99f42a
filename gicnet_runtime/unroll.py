"""The state of one trajectory while it is unrolled segment by segment.

Each segment of each trajectory is predicted by every ensemble member (a
:class:`Candidate`).  :meth:`Unroll.offer` decides what to do with it, following the
original GICnet's backtracking:

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
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gicnet_runtime.ensemble import Ranking


@dataclasses.dataclass
class Candidate:
    """Every member's prediction of one segment of one trajectory (M members, F frames).

    Attributes:
        times_fs: (F,) frame times in the segment, fs, from the trajectory's start.
        positions: (M, F, N, 3) Å, momentum-restored.
        velocities: (M, F, N, 3) Å/fs, momentum-restored.
        potential_eV: (M, F) eV, or None for models without energy.
        end_positions: (M, N, 3) Å at the segment's end.
        end_velocities: (M, N, 3) Å/fs at the segment's end.
        ranking: the members ranked by total-energy error.
        members: (M,) ensemble index of each row (rows are cut to the member in use once
            the segment can no longer change).
        failure: why the best member failed, when every member did; else None.
    """

    times_fs: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    potential_eV: np.ndarray | None
    end_positions: np.ndarray
    end_velocities: np.ndarray
    ranking: Ranking
    members: np.ndarray
    failure: str | None = None

    @property
    def member(self) -> int:
        """Ensemble index of the member in use."""
        return int(self.members[self.ranking.member])

    @property
    def error_eV(self) -> float:
        """Total-energy error of the member in use, eV."""
        return self.ranking.error_eV

    def frames(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """(times_fs, positions, velocities, potential_eV) of the member in use."""
        m = self.ranking.member
        potential = None if self.potential_eV is None else self.potential_eV[m]
        return self.times_fs, self.positions[m], self.velocities[m], potential


class Unroll:
    """One trajectory being unrolled: accepted segments, attempts, targets.

    Attributes:
        positions0: (N, 3) Å, velocities0: (N, 3) Å/fs: the initial condition.
        momentum0: (3,) amu·Å/fs, angular0: (3,) amu·Å²/fs, com0: (3,) Å: conserved targets.
        segment: index of the segment to predict next.
        accepted: accepted segments, in order.
        backtracks: how often a previous segment switched member.
        over_threshold: indices of segments accepted above the energy threshold.
        failure: why the trajectory stopped early, or None.
    """

    def __init__(self, positions0: np.ndarray, velocities0: np.ndarray,
                 momentum0: np.ndarray, angular0: np.ndarray, com0: np.ndarray) -> None:
        self.positions0, self.velocities0 = positions0, velocities0
        self.momentum0, self.angular0, self.com0 = momentum0, angular0, com0
        self.segment = 0
        self.accepted: list[Candidate] = []
        self.attempts: list[tuple[int, Candidate]] = []
        self.backtracks = 0
        self.over_threshold: list[int] = []
        self.failure: str | None = None

    def start(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions (N, 3) Å, velocities (N, 3) Å/fs) where the next segment starts."""
        if not self.accepted:
            return self.positions0, self.velocities0
        last = self.accepted[-1]
        m = last.ranking.member
        return last.end_positions[m], last.end_velocities[m]

    def offer(self, candidate: Candidate, threshold_eV: float) -> bool:
        """Take a prediction of the current segment; True when a segment was accepted."""
        previous = self.accepted[-1].ranking if self.accepted else None
        if candidate.ranking.error_eV <= threshold_eV:
            self._accept(candidate)
            return True
        self.attempts.append((previous.rank if previous else 0, candidate))
        if previous is not None and previous.switch_to_next(threshold_eV):
            self.backtracks += 1
            return False
        rank, best = min(self.attempts, key=lambda a: a[1].ranking.error_eV)
        if not np.isfinite(best.ranking.error_eV):
            self.failure = best.failure
            return False
        if previous is not None:
            previous.rank = rank
        self.over_threshold.append(self.segment)
        self._accept(best)
        return True

    def _accept(self, candidate: Candidate) -> None:
        if self.accepted:
            self.accepted[-1] = _only_member_in_use(self.accepted[-1])
        self.accepted.append(candidate)
        self.attempts = []
        self.segment += 1


def _only_member_in_use(candidate: Candidate) -> Candidate:
    """The candidate cut down to the member in use (it can no longer change).

    The arrays are copied: as views they would keep every member's prediction of the
    whole batch alive (the propagate step's arrays), several times the memory of the
    trajectories themselves."""
    pick = slice(candidate.ranking.member, candidate.ranking.member + 1)
    potential = None if candidate.potential_eV is None else candidate.potential_eV[pick].copy()
    return dataclasses.replace(
        candidate, positions=candidate.positions[pick].copy(),
        velocities=candidate.velocities[pick].copy(), potential_eV=potential,
        end_positions=candidate.end_positions[pick].copy(),
        end_velocities=candidate.end_velocities[pick].copy(),
        ranking=Ranking(candidate.ranking.errors_eV[pick]), members=candidate.members[pick])
