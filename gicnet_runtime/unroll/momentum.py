"""Restoring the linear and angular momentum and the centre of mass: pure batched numpy.

A GICnet prediction conserves the total linear and angular momentum only as well as the
network was trained; unrolled over many segments the errors would add up.  After every
segment the runtime puts both back to the trajectory's initial values with the smallest
change of the velocities (a uniform shift, then a rigid-rotation correction), and puts
the centre of mass back on its straight line.

All functions take (..., N, 3) arrays and masses (N,) in amu; angular momenta are about
the centre of mass.  Units: Å, Å/fs, amu, so momenta are amu·Å/fs and angular momenta
amu·Å²/fs.
"""

from __future__ import annotations

import numpy as np

from gicnet_runtime.core.mechanics import (
    angular_momentum,
    angular_momentum_of,
    centre_of_mass,
    cross,
    inertia_of,
    inertia_tensor,
    kinetic_energy_eV,
    linear_momentum,
    relative_positions,
)

#: Principal moments of inertia below this fraction of the largest count as zero, so that
#: a linear molecule gets no correction about its axis (the pseudo-inverse's cut-off).
INERTIA_RCOND = 1e-8

__all__ = [
    "angular_momentum",
    "centre_of_mass",
    "inertia_tensor",
    "kinetic_energy_eV",
    "linear_momentum",
    "restore_centre_of_mass",
    "restore_momentum",
]


def restore_momentum(positions: np.ndarray, velocities: np.ndarray, masses: np.ndarray,
                     momentum: np.ndarray, angular: np.ndarray) -> np.ndarray:
    """Velocities with the given total linear and angular momentum.

    The linear momentum is fixed by shifting every velocity by the same vector, the angular
    momentum by removing a rigid rotation w x (r - com), with w = I^+ (L - angular).  The
    rotation carries no linear momentum, so both targets hold together.

    Args:
        positions: (..., N, 3) Å.
        velocities: (..., N, 3) Å/fs.
        masses: (N,) amu.
        momentum: (..., 3) amu·Å/fs, target total linear momentum.
        angular: (..., 3) amu·Å²/fs, target angular momentum about the centre of mass.

    Returns:
        (..., N, 3) Å/fs, float64.
    """
    positions = np.asarray(positions, dtype=np.float64)
    velocities = np.asarray(velocities, dtype=np.float64)
    masses = np.asarray(masses, dtype=np.float64)
    shift = (linear_momentum(velocities, masses) - momentum) / masses.sum()
    velocities = velocities - shift[..., None, :]
    rel = relative_positions(positions, masses)
    excess = angular_momentum_of(rel, velocities, masses) - angular
    omega = np.matmul(_pseudo_inverse(inertia_of(rel, masses)), excess[..., None])[..., 0]
    return velocities - cross(omega[..., None, :], rel)


def _pseudo_inverse(inertia: np.ndarray) -> np.ndarray:
    """(..., 3, 3) symmetric: the adjugate over the determinant (fast), or the pseudo-inverse
    with cut-off ``INERTIA_RCOND`` where the tensor is (nearly) singular (linear molecules)."""
    rows = [inertia[..., i, :] for i in range(3)]
    adjugate = np.stack([cross(rows[1], rows[2]), cross(rows[2], rows[0]),
                         cross(rows[0], rows[1])], axis=-1)
    det = np.sum(rows[0] * adjugate[..., 0], axis=-1)
    trace = np.trace(inertia, axis1=-2, axis2=-1)
    singular = ~(det > INERTIA_RCOND * trace**3)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = adjugate / det[..., None, None]
    if np.any(singular):
        inverse[singular] = np.linalg.pinv(inertia[singular], rcond=INERTIA_RCOND,
                                           hermitian=True)
    return inverse


def restore_centre_of_mass(positions: np.ndarray, masses: np.ndarray,
                           com_A: np.ndarray) -> np.ndarray:
    """Positions translated so that their centre of mass is ``com_A``.

    positions: (..., N, 3) Å; masses: (N,) amu; com_A: (..., 3) Å -> (..., N, 3) Å, float64.
    """
    positions = np.asarray(positions, dtype=np.float64)
    shift = np.asarray(com_A, dtype=np.float64) - centre_of_mass(positions, masses)
    return positions + shift[..., None, :]
