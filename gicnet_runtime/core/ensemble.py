"""Choosing among ensemble members by total-energy conservation.

The members of an ensemble are networks trained alike; a 4D model conserves energy
only approximately, so for every segment the runtime asks each member for the segment
and ranks the members by the segment's total-energy error: the largest
|E_pot(t) + E_kin(t) - E_ref| over the segment's sampled times, with E_ref the
trajectory's total energy at t = 0 (the members' mean potential energy at the initial
geometry plus the initial kinetic energy).  A member whose prediction failed
numerically ranks last with an infinite error.  Models without an energy output rank
every working member equal, so the first working member is used.
"""

from __future__ import annotations

import numpy as np

from gicnet_runtime.core.mechanics import kinetic_energy_eV
from gicnet_runtime.units import EV_IN_KCAL_PER_MOL

#: Default bound on a segment's total-energy error, eV: 1 kcal/mol, the original GICnet's
#: threshold for stepping back a segment.
ENERGY_THRESHOLD_EV = 1.0 / EV_IN_KCAL_PER_MOL


def reference_energy_eV(potential0_eV: np.ndarray, velocities0: np.ndarray,
                        masses: np.ndarray) -> np.ndarray:
    """Total energy at t = 0: members' mean potential energy plus kinetic energy.

    potential0_eV: (M, B) eV, each member's potential energy at the initial geometry;
    velocities0: (B, N, 3) Å/fs; masses: (N,) amu -> (B,) eV.
    """
    return np.mean(potential0_eV, axis=0) + kinetic_energy_eV(velocities0, masses)


def total_energy_error_eV(potential_eV: np.ndarray, velocities: np.ndarray,
                          masses: np.ndarray, reference_eV: np.ndarray) -> np.ndarray:
    """Largest total-energy error over the sampled times; inf where anything is non-finite.

    potential_eV: (M, B, K) eV; velocities: (M, B, K, N, 3) Å/fs; masses: (N,) amu;
    reference_eV: (B,) eV -> (M, B) eV.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        total = potential_eV + kinetic_energy_eV(velocities, masses)
        error = np.max(np.abs(total - reference_eV[None, :, None]), axis=-1)
    return np.where(np.isfinite(error), error, np.inf)


class Ranking:
    """One segment's members ranked by error, and which of them is in use.

    Attributes:
        errors_eV: (M,) total-energy error of each member, eV (inf: failed).
        order: (M,) member indices by increasing error (ties keep member order).
        rank: position in ``order`` of the member in use (0: the best).
    """

    def __init__(self, errors_eV: np.ndarray) -> None:
        self.errors_eV = np.asarray(errors_eV, dtype=np.float64)
        self.order = np.argsort(self.errors_eV, kind="stable")
        self.rank = 0

    @property
    def member(self) -> int:
        return int(self.order[self.rank])

    @property
    def error_eV(self) -> float:
        return float(self.errors_eV[self.member])

    def switch_to_next(self, threshold_eV: float) -> bool:
        """Use the next member in the ranking whose error is within the threshold, if any."""
        for rank in range(self.rank + 1, len(self.order)):
            if self.errors_eV[self.order[rank]] <= threshold_eV:
                self.rank = rank
                return True
        return False
