"""Mechanics of molecules as pure batched numpy: centre of mass, momenta, inertia and
kinetic energy.

All functions take (..., N, 3) arrays and masses (N,) in amu; angular momenta are about
the centre of mass.  Units: Å, Å/fs, amu, so momenta are amu·Å/fs, angular momenta
amu·Å²/fs and energies eV.
"""

from __future__ import annotations

import numpy as np

from gicnet_runtime.units import AMU_A2_PER_FS2_IN_EV


def centre_of_mass(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """positions: (..., N, 3) Å; masses: (N,) amu -> (..., 3) Å."""
    w = masses / masses.sum()
    return np.einsum("...ni,n->...i", positions, w)


def linear_momentum(velocities: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Total linear momentum.  velocities: (..., N, 3) Å/fs -> (..., 3) amu·Å/fs."""
    return np.matmul(masses, velocities)


def angular_momentum(positions: np.ndarray, velocities: np.ndarray,
                     masses: np.ndarray) -> np.ndarray:
    """Total angular momentum about the centre of mass.

    positions: (..., N, 3) Å; velocities: (..., N, 3) Å/fs -> (..., 3) amu·Å²/fs.
    """
    return np.matmul(masses, cross(relative_positions(positions, masses), velocities))


def inertia_tensor(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Inertia tensor about the centre of mass.  positions: (..., N, 3) Å -> (..., 3, 3) amu·Å²."""
    return inertia_of(relative_positions(positions, masses), masses)


def kinetic_energy_eV(velocities: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Kinetic energy.  velocities: (..., N, 3) Å/fs -> (...) eV."""
    return 0.5 * np.einsum("...ni,...ni,n->...", velocities, velocities,
                           masses) * AMU_A2_PER_FS2_IN_EV


def relative_positions(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Positions relative to the centre of mass, (..., N, 3) Å."""
    return positions - centre_of_mass(positions, masses)[..., None, :]


def inertia_of(rel: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Inertia tensor (..., 3, 3) amu·Å² of positions ``rel`` (..., N, 3) Å relative to the
    centre of mass."""
    weighted = rel * masses[:, None]
    outer = np.matmul(np.swapaxes(weighted, -1, -2), rel)
    return np.trace(outer, axis1=-2, axis2=-1)[..., None, None] * np.eye(3) - outer


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product over the last axis, broadcast (numpy's np.cross is several times slower)."""
    return np.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
                     a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                     a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], axis=-1)
