"""Linear and angular momentum of molecules, and restoring them: pure batched numpy.

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

from gicnet_runtime.icdef import centre_of_mass
from gicnet_runtime.units import AMU_A2_PER_FS2_IN_EV

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


def linear_momentum(velocities: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Total linear momentum.  velocities: (..., N, 3) Å/fs -> (..., 3) amu·Å/fs."""
    return np.einsum("...ni,n->...i", velocities, masses)


def angular_momentum(positions: np.ndarray, velocities: np.ndarray,
                     masses: np.ndarray) -> np.ndarray:
    """Total angular momentum about the centre of mass.

    positions: (..., N, 3) Å; velocities: (..., N, 3) Å/fs -> (..., 3) amu·Å²/fs.
    """
    rel = positions - centre_of_mass(positions, masses)[..., None, :]
    return np.einsum("...ni,n->...i", np.cross(rel, velocities), masses)


def inertia_tensor(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Inertia tensor about the centre of mass.  positions: (..., N, 3) Å -> (..., 3, 3) amu·Å²."""
    rel = positions - centre_of_mass(positions, masses)[..., None, :]
    r2 = np.einsum("...ni,...ni,n->...", rel, rel, masses)
    outer = np.einsum("...ni,...nj,n->...ij", rel, rel, masses)
    return r2[..., None, None] * np.eye(3) - outer


def kinetic_energy_eV(velocities: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Kinetic energy.  velocities: (..., N, 3) Å/fs -> (...) eV."""
    return 0.5 * np.einsum("...ni,...ni,n->...", velocities, velocities,
                           masses) * AMU_A2_PER_FS2_IN_EV


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
    excess = angular_momentum(positions, velocities, masses) - angular
    inverse = np.linalg.pinv(inertia_tensor(positions, masses), rcond=INERTIA_RCOND,
                             hermitian=True)
    omega = np.einsum("...ij,...j->...i", inverse, excess)
    rel = positions - centre_of_mass(positions, masses)[..., None, :]
    return velocities - np.cross(omega[..., None, :], rel)


def restore_centre_of_mass(positions: np.ndarray, masses: np.ndarray,
                           com_A: np.ndarray) -> np.ndarray:
    """Positions translated so that their centre of mass is ``com_A``.

    positions: (..., N, 3) Å; masses: (N,) amu; com_A: (..., 3) Å -> (..., N, 3) Å, float64.
    """
    positions = np.asarray(positions, dtype=np.float64)
    shift = np.asarray(com_A, dtype=np.float64) - centre_of_mass(positions, masses)
    return positions + shift[..., None, :]
