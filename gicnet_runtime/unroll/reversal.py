"""Time-reversal correction of each segment's start: undoing the network's damping.

Newton's equations are time-reversible: run a trajectory for L, reverse the velocities,
run it for L again and it comes back to where it started, velocities reversed.  A network
trained on squared errors is not quite reversible: the state it predicts at the end of a
segment is pulled a little towards the mean (about 1 % of the O-H bond's displacement
per 10 fs segment for the shipped ethanol model, docs/analysis.md), and at 100 segment
boundaries per picosecond that damps the fast stretches.  The same pull appears when the
network predicts backwards, so the round trip measures it without any reference data:

    d = s - R F(R F(s)),

where F is a member's prediction of the state at L and R reverses the velocities.  For a
damping error (the end state's displacements shrunk by a factor g) d is the shrinkage of
both legs, about 2 (1 - g) times the displacement; for an error in the phase (a frequency
slightly off) the two legs cancel and d is 0.  Starting the segment from s + k d instead
of s, with k about 1/2, gives an end state whose energy error averages to zero over the
phases of the vibration, to second order in the damping: what was a loss at every boundary
becomes a fluctuation that averages out.

Here d is the members' mean round-trip defect, and the share k is the model's
``unroll_reversal_share`` (:class:`gicnet_runtime.core.description.ModelDescription`).
Where the network is unsure of itself the defect is large and mostly noise (its rigid-body
part, the network's error in the molecule's orientation and rotation, included): a
trajectory whose k d would move an atom by more than ``MAX_SHIFT_A`` or change its velocity
by more than ``MAX_SHIFT_A_PER_FS`` is not corrected in that segment; nor is one whose
start already holds more total energy than its reference by more than ``MAX_EXCESS_EV``
(the network's own energy, the members' mean: the correction puts back what the network
loses, and without this guard a rare run kept gaining energy, docs/analysis.md).  What is
added is k d without its rigid-body translation and rotation, which the unrolling's
momentum and centre-of-mass restoration would undo anyway.
Costs: two graph calls at the one time L per segment, the second on every member's end
state.

Pure batched numpy functions; ``run`` is :meth:`gicnet_runtime.core.model.Model.run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from gicnet_runtime.core.contract import ENERGY_T, POSITIONS_T, VELOCITIES_T
from gicnet_runtime.core.ensemble import ENERGY_THRESHOLD_EV, reference_energy_eV
from gicnet_runtime.unroll.momentum import restore_momentum

#: Largest k d of an atom's position, Å, and of its velocity, Å/fs, rigid-body part included,
#: that is applied; a trajectory whose k d exceeds either gets no correction in that segment
#: (chosen on the shipped ethanol model's unrolled trajectories, docs/analysis.md).
MAX_SHIFT_A = 0.03
MAX_SHIFT_A_PER_FS = 0.004
#: A trajectory whose start holds more total energy than its reference by more than this,
#: eV, gets no correction in that segment (the correction puts back what the network loses;
#: a trajectory already too hot has nothing to get back): the unrolling's energy threshold,
#: 1 kcal/mol.
MAX_EXCESS_EV = ENERGY_THRESHOLD_EV

Run = Callable[[np.ndarray, np.ndarray, np.ndarray], dict]


@dataclass
class CorrectedStart:
    """The states a segment is predicted from, and what the given starts were.

    Attributes:
        positions, velocities: (A, N, 3) Å, Å/fs: the corrected starts.
        applied: (A,) whether each trajectory's start was corrected.
        positions0, velocities0: (A, N, 3) the starts as given.
        potential0_eV: (M, A) each member's potential energy of the given start, or None
            for a model without energy.
    """

    positions: np.ndarray
    velocities: np.ndarray
    applied: np.ndarray
    positions0: np.ndarray
    velocities0: np.ndarray
    potential0_eV: np.ndarray | None


def round_trip_defect(run: Run, positions: np.ndarray, velocities: np.ndarray,
                      segment_fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The members' mean round-trip defect d = s - R F(R F(s)) of starts s.

    Args:
        run: the model's graph call (positions (B, N, 3), velocities (B, N, 3), times
            (B, K)) -> outputs with a member axis first.
        positions, velocities: (A, N, 3) Å, Å/fs, the starts.
        segment_fs: L, fs.

    Returns:
        d's positions (A, N, 3) Å and velocities (A, N, 3) Å/fs, and each member's
        potential energy at t = 0 of the starts, (M, A) eV, or None without an energy output.
    """
    n_rows, n_atoms = positions.shape[:2]
    times = np.tile([0.0, segment_fs], (n_rows, 1))
    out = run(positions, velocities, times)
    end_pos = out[POSITIONS_T][:, :, 1].astype(np.float64)     # (M, A, N, 3)
    end_vel = out[VELOCITIES_T][:, :, 1].astype(np.float64)
    potential0 = (out[ENERGY_T][:, :, 0].astype(np.float64)
                  if out.get(ENERGY_T) is not None else None)
    n_members = end_pos.shape[0]
    back = run(end_pos.reshape(-1, n_atoms, 3), -end_vel.reshape(-1, n_atoms, 3),
               np.full((n_members * n_rows, 1), segment_fs))
    # member m's backward leg from its own forward end: block m of member m's rows
    own = np.arange(n_members)
    shape = (n_members, n_members, n_rows, n_atoms, 3)
    back_pos = back[POSITIONS_T][:, :, 0].astype(np.float64).reshape(shape)[own, own]
    back_vel = -back[VELOCITIES_T][:, :, 0].astype(np.float64).reshape(shape)[own, own]
    return ((positions[None] - back_pos).mean(axis=0),
            (velocities[None] - back_vel).mean(axis=0), potential0)


def corrected_start(run: Run, positions: np.ndarray, velocities: np.ndarray,
                    masses: np.ndarray, segment_fs: float, share: float,
                    reference_eV: np.ndarray | None = None) -> CorrectedStart:
    """Starts s + ``share`` d (:func:`round_trip_defect`) without d's rigid-body motion,
    each trajectory's only where ``share`` d stays within ``MAX_SHIFT_A`` and
    ``MAX_SHIFT_A_PER_FS`` and, given the trajectories' reference total energies (A,) eV,
    where the start's total energy (the members' mean potential energy plus the kinetic
    energy) exceeds its reference by at most ``MAX_EXCESS_EV``."""
    d_pos, d_vel, potential0 = round_trip_defect(run, positions, velocities, segment_fs)
    shift_pos, shift_vel = share * d_pos, share * d_vel
    applied = ((np.linalg.norm(shift_pos, axis=-1).max(axis=-1) <= MAX_SHIFT_A)
               & (np.linalg.norm(shift_vel, axis=-1).max(axis=-1) <= MAX_SHIFT_A_PER_FS))
    if reference_eV is not None and potential0 is not None:
        excess = reference_energy_eV(potential0, velocities, masses) - reference_eV
        applied &= excess <= MAX_EXCESS_EV
    # Both parts' rigid-body motion about the start's centre of mass, in one call.
    zero = np.zeros((positions.shape[0], 3))
    shift_pos, shift_vel = restore_momentum(positions, np.stack([shift_pos, shift_vel]),
                                            masses, zero, zero)
    keep = applied[:, None, None]
    return CorrectedStart(positions + np.where(keep, shift_pos, 0.0),
                          velocities + np.where(keep, shift_vel, 0.0), applied,
                          positions, velocities, potential0)


def given_start_at_zero(out: dict[str, np.ndarray], local_fs: np.ndarray,
                        start: CorrectedStart) -> dict[str, np.ndarray]:
    """Graph outputs (M, A, K, ...) predicted from the corrected starts with the frames at
    local time 0 (A, K) set back to the starts as given: the trajectory passes through
    them, and only the prediction after them starts from the corrected state."""
    at_zero = local_fs == 0.0
    if not at_zero.any():
        return out
    out = dict(out)
    rows, cols = np.nonzero(at_zero)
    for name, given in ((POSITIONS_T, start.positions0), (VELOCITIES_T, start.velocities0)):
        value = out[name].copy()
        value[:, rows, cols] = given[rows].astype(value.dtype)
        out[name] = value
    if start.potential0_eV is not None and out.get(ENERGY_T) is not None:
        value = out[ENERGY_T].copy()
        value[:, rows, cols] = start.potential0_eV[:, rows].astype(value.dtype)
        out[ENERGY_T] = value
    return out
