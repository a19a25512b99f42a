"""Energy restoration: giving an unrolled trajectory its initial total energy back.

A GICnet network trained on a mean-squared error regresses towards average motion: it
damps the vibrations it is least sure of, so an unrolled trajectory slowly loses total
energy (the shipped ethanol model: ~6 kcal/mol over the first 200 fs).  Like the momenta
(:mod:`gicnet_runtime.unroll.momentum`), the runtime can put the energy back at the end of every
segment.  It scales only the stretch-and-bend part of the velocities: the motion that
changes the bond lengths and angles of the model's IC rows between real atoms, leaving the
rigid motion and the torsions alone.  Measured on the shipped model (docs/analysis.md,
10 fs segments): scaling the whole internal motion instead conserves the reference
energy less well, and scaling the bond stretches alone fits the reference spectrum worse.

The stretch-and-bend part of velocities v is the motion of least kinetic energy with the
same bond and angle rates: v_sb = M⁻¹ Bᵀ (B M⁻¹ Bᵀ)⁻¹ B v, with B the Jacobian of those
coordinates (the result does not depend on their units) and M the masses.  It is
orthogonal to the rest in the mass-weighted sense, so the kinetic energy splits as
E(v) = E(v_sb) + E(v - v_sb), and, as lengths and angles do not change under rigid
motion, it carries no linear or angular momentum.

Pure batched numpy: positions (..., N, 3) Å, velocities (..., N, 3) Å/fs, masses (N,) amu,
bonds (P, 2) and angles (Q, 3) atom indices.
"""

from __future__ import annotations

import numpy as np

from gicnet_runtime.core.mechanics import kinetic_energy_eV

#: Largest factor by which restoration may change the stretch velocities.
MAX_SCALE = 2.0


def jacobian(positions: np.ndarray, bonds: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Derivatives of the bond lengths (P, 2) and angles (Q, 3; vertex in the middle) with
    respect to the positions: (..., P + Q, N, 3), in Å/Å and rad/Å."""
    positions = np.asarray(positions, dtype=np.float64)
    bonds, angles = np.asarray(bonds).reshape(-1, 2), np.asarray(angles).reshape(-1, 3)
    jac = np.zeros(positions.shape[:-2] + (len(bonds) + len(angles),) + positions.shape[-2:])
    i, j = bonds.T
    rows = np.arange(len(bonds))
    unit, _ = _unit_and_length(positions[..., i, :] - positions[..., j, :])
    jac[..., rows, i, :] = unit
    jac[..., rows, j, :] = -unit
    a, b, c = angles.T
    rows = len(bonds) + np.arange(len(angles))
    e1, r1 = _unit_and_length(positions[..., a, :] - positions[..., b, :])
    e2, r2 = _unit_and_length(positions[..., c, :] - positions[..., b, :])
    cos = np.sum(e1 * e2, axis=-1, keepdims=True)
    sin = np.sqrt(np.maximum(1.0 - cos**2, 0.0))
    d_a = (cos * e1 - e2) / (r1 * sin)
    d_c = (cos * e2 - e1) / (r2 * sin)
    jac[..., rows, a, :] = d_a
    jac[..., rows, c, :] = d_c
    jac[..., rows, b, :] = -(d_a + d_c)
    return jac


def _unit_and_length(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    length = np.linalg.norm(d, axis=-1, keepdims=True)
    return d / length, length


def stretch_bend_velocities(positions: np.ndarray, velocities: np.ndarray, masses: np.ndarray,
                            bonds: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """The part of the velocities that stretches the bonds and bends the angles, with least
    kinetic energy (module docstring): (..., N, 3) Å/fs."""
    velocities = np.asarray(velocities, dtype=np.float64)
    masses = np.asarray(masses, dtype=np.float64)
    jac = jacobian(positions, bonds, angles)
    weighted = jac / masses[:, None]                                  # rows of B M⁻¹
    gram = np.einsum("...pnk,...qnk->...pq", jac, weighted)           # B M⁻¹ Bᵀ
    rates = np.einsum("...pnk,...nk->...p", jac, velocities)          # B v
    try:
        coeff = np.linalg.solve(gram, rates[..., None])[..., 0]
    except np.linalg.LinAlgError:  # dependent coordinates (e.g. a collapsed geometry)
        coeff = np.einsum("...pq,...q->...p", np.linalg.pinv(gram, hermitian=True), rates)
    return np.einsum("...pnk,...p->...nk", weighted, coeff)


def restore_kinetic_energy(positions: np.ndarray, velocities: np.ndarray, masses: np.ndarray,
                           bonds: np.ndarray, angles: np.ndarray, target_eV: np.ndarray,
                           max_scale: float = MAX_SCALE) -> np.ndarray:
    """Velocities with kinetic energy ``target_eV`` (...) eV by scaling their stretch-and-bend
    part (:func:`stretch_bend_velocities`).

    The part v_sb is scaled by s, chosen so that the kinetic energy becomes the target and
    kept within [1 / max_scale, max_scale]; positions, the rest of the motion (rigid
    motion, torsions) and both momenta stay as they are.  Where the target is below the
    energy of the rest, there is no such motion or it cannot be computed (a linear angle),
    the velocities are returned unchanged.  Returns (..., N, 3) Å/fs, float64.
    """
    velocities = np.asarray(velocities, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        part = stretch_bend_velocities(positions, velocities, masses, bonds, angles)
        have = kinetic_energy_eV(part, masses)
        wanted = np.asarray(target_eV, dtype=np.float64) \
            - kinetic_energy_eV(velocities, masses) + have
        scale = np.sqrt(wanted / have)
    ok = (wanted > 0) & (have > 0) & np.isfinite(scale)
    scale = np.where(ok, np.clip(scale, 1.0 / max_scale, max_scale), 1.0)
    return velocities + (scale - 1.0)[..., None, None] * np.where(
        ok[..., None, None], part, 0.0)
