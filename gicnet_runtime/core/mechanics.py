"""Mechanics of molecules as pure batched numpy: centre of mass, momenta, inertia and
kinetic energy.

All functions take (..., N, 3) arrays and masses (N,) in amu; angular momenta are about
the centre of mass.  Units: Å, Å/fs, amu, so momenta are amu·Å/fs, angular momenta
amu·Å²/fs and energies eV.
"""

from __future__ import annotations

import numpy as np

from gicnet_runtime.units import AMU_A2_PER_FS2_IN_EV, KB_EV_PER_K

#: Principal moments of inertia below this fraction of the largest make a linear molecule.
LINEAR_RTOL = 1e-8

#: Added to the ridge so that a single atom (no inertia) needs no special case, amu·Å².
_TINY_INERTIA_AMU_A2 = 1e-12


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
    return angular_momentum_of(relative_positions(positions, masses), velocities, masses)


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


def angular_momentum_of(rel: np.ndarray, velocities: np.ndarray,
                        masses: np.ndarray) -> np.ndarray:
    """Angular momentum (..., 3) amu·Å²/fs of positions ``rel`` (..., N, 3) Å relative to the
    centre of mass moving with velocities (..., N, 3) Å/fs."""
    return np.matmul(masses, cross(rel, velocities))


def inertia_of(rel: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Inertia tensor (..., 3, 3) amu·Å² of positions ``rel`` (..., N, 3) Å relative to the
    centre of mass."""
    weighted = rel * masses[:, None]
    outer = np.matmul(np.swapaxes(weighted, -1, -2), rel)
    return np.trace(outer, axis1=-2, axis2=-1)[..., None, None] * np.eye(3) - outer


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product over the last axis, broadcast (numpy's np.cross is several times slower;
    the components are written straight into the result, not stacked)."""
    out = np.empty(np.broadcast_shapes(np.shape(a), np.shape(b)), dtype=np.result_type(a, b))
    np.subtract(a[..., 1] * b[..., 2], a[..., 2] * b[..., 1], out=out[..., 0])
    np.subtract(a[..., 2] * b[..., 0], a[..., 0] * b[..., 2], out=out[..., 1])
    np.subtract(a[..., 0] * b[..., 1], a[..., 1] * b[..., 0], out=out[..., 2])
    return out


def degrees_of_freedom(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Internal degrees of freedom, 3N - 6 (3N - 5 when linear, 0 for one atom), of
    structures (..., N, 3) Å -> (...) int."""
    n_atoms = positions.shape[-2]
    moments = np.linalg.eigvalsh(inertia_tensor(positions, masses))
    linear = moments[..., 0] <= LINEAR_RTOL * moments[..., -1]
    return np.where(n_atoms < 2, 0, 3 * n_atoms - np.where(linear, 5, 6)).astype(np.int64)


def internal_kinetic_energy_eV(positions: np.ndarray, velocities: np.ndarray,
                               masses: np.ndarray) -> np.ndarray:
    """Kinetic energy less that of the centre of mass and of the rigid rotation
    (0.5 L · I⁺ L): (..., N, 3) Å, Å/fs -> (...) eV, >= 0."""
    p = linear_momentum(velocities, masses)
    translation = 0.5 * np.sum(p * p, axis=-1) / masses.sum()
    rel = relative_positions(positions, masses)
    spin = angular_momentum_of(rel, velocities, masses)
    inertia = inertia_of(rel, masses)
    # A ridge of LINEAR_RTOL of the trace instead of a pseudo-inverse (10 times slower):
    # a linear molecule has no angular momentum about its axis, so nothing spins there.
    ridge = LINEAR_RTOL * np.trace(inertia, axis1=-2, axis2=-1) + _TINY_INERTIA_AMU_A2
    omega = np.linalg.solve(inertia + ridge[..., None, None] * np.eye(3), spin[..., None])
    rotation = 0.5 * np.sum(spin * omega[..., 0], axis=-1)
    rigid = (translation + rotation) * AMU_A2_PER_FS2_IN_EV
    return np.maximum(kinetic_energy_eV(velocities, masses) - rigid, 0.0)


def internal_temperature_K(positions: np.ndarray, velocities: np.ndarray, masses: np.ndarray,
                           n_dof: np.ndarray | int) -> np.ndarray:
    """Kinetic temperature of the internal motion, 2 E_int / (n_dof k_B): (..., N, 3) Å,
    Å/fs, n_dof broadcast to (...) -> (...) K (NaN where n_dof is 0)."""
    energy = internal_kinetic_energy_eV(positions, velocities, masses)
    dof = np.asarray(n_dof, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(dof > 0, 2.0 * energy / (dof * KB_EV_PER_K), np.nan)
