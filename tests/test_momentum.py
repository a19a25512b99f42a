"""Momenta, inertia and their restoration against hand-computed references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gicnet_runtime.unroll import momentum as mom

# Two atoms on the x axis: m = (1, 3) amu at x = 0 and 4 Å; centre of mass at x = 3 Å.
PAIR_MASSES = np.array([1.0, 3.0])
PAIR_POSITIONS = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0]])


def test_linear_momentum_by_hand():
    v = np.array([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]])
    # (1*1 + 3*0.5, 1*2 + 3*(-1), 1*0 + 3*3)
    np.testing.assert_allclose(mom.linear_momentum(v, PAIR_MASSES), [2.5, -1.0, 9.0])


def test_angular_momentum_by_hand():
    # Atom 0 at -3 Å from the COM moving +y at 1 Å/fs; atom 1 at +1 Å moving -y at 1/3 Å/fs.
    v = np.array([[0.0, 1.0, 0.0], [0.0, -1.0 / 3.0, 0.0]])
    # L_z = sum m (x v_y - y v_x) = 1*(-3*1) + 3*(1*(-1/3)) = -4 amu Å²/fs.
    np.testing.assert_allclose(mom.angular_momentum(PAIR_POSITIONS, v, PAIR_MASSES),
                               [0.0, 0.0, -4.0], atol=1e-12)


def test_inertia_tensor_of_a_diatomic():
    # Reduced mass 3/4 amu, bond 4 Å: I = mu d² = 12 amu Å² about y and z, 0 about x.
    np.testing.assert_allclose(mom.inertia_tensor(PAIR_POSITIONS, PAIR_MASSES),
                               np.diag([0.0, 12.0, 12.0]), atol=1e-12)


def test_kinetic_energy_from_si_units():
    # 1 amu at 1 Å/fs = 1e5 m/s: E = m v² / 2 in J, over e (CODATA 2014, as ASE).
    expected_eV = 0.5 * 1.660539040e-27 * 1e10 / 1.6021766208e-19
    v = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert mom.kinetic_energy_eV(v, np.array([1.0, 5.0])) == pytest.approx(expected_eV, rel=1e-12)


def test_restore_removes_a_rigid_rotation_and_a_drift_exactly():
    rng = np.random.default_rng(3)
    masses = rng.uniform(1.0, 16.0, 7)
    pos = rng.normal(0.0, 1.5, (7, 3))
    internal = rng.normal(0.0, 0.01, (7, 3))
    internal = mom.restore_momentum(pos, internal, masses, np.zeros(3), np.zeros(3))
    rel = pos - mom.centre_of_mass(pos, masses)
    spurious = np.cross([0.01, -0.02, 0.005], rel) + [0.003, 0.0, -0.001]
    restored = mom.restore_momentum(pos, internal + spurious, masses, np.zeros(3), np.zeros(3))
    np.testing.assert_allclose(restored, internal, atol=1e-14)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 4))
def test_restore_hits_the_targets(seed, batch):
    rng = np.random.default_rng(seed)
    masses = rng.uniform(1.0, 20.0, 5)
    pos = rng.normal(0.0, 2.0, (batch, 5, 3))
    vel = rng.normal(0.0, 0.05, (batch, 5, 3))
    p_target = rng.normal(0.0, 0.1, (batch, 3))
    l_target = rng.normal(0.0, 0.1, (batch, 3))
    out = mom.restore_momentum(pos, vel, masses, p_target, l_target)
    # Independent check: explicit sums over atoms.
    for b in range(batch):
        com = (masses[:, None] * pos[b]).sum(0) / masses.sum()
        p = sum(masses[i] * out[b, i] for i in range(5))
        ang = sum(masses[i] * np.cross(pos[b, i] - com, out[b, i]) for i in range(5))
        np.testing.assert_allclose(p, p_target[b], atol=1e-12)
        np.testing.assert_allclose(ang, l_target[b], atol=1e-12)


def test_linear_molecule_is_corrected_only_across_its_axis():
    masses = np.array([16.0, 12.0, 16.0])
    pos = np.array([[-1.16, 0.0, 0.0], [0.0, 0.0, 0.0], [1.16, 0.0, 0.0]])
    vel = np.array([[0.0, 0.01, 0.0], [0.0, 0.0, 0.0], [0.0, -0.01, 0.002]])
    out = mom.restore_momentum(pos, vel, masses, np.zeros(3), np.zeros(3))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(mom.linear_momentum(out, masses), 0.0, atol=1e-14)
    np.testing.assert_allclose(mom.angular_momentum(pos, out, masses), 0.0, atol=1e-14)


def test_restore_centre_of_mass():
    target = np.array([[1.0, 2.0, 3.0]])
    out = mom.restore_centre_of_mass(PAIR_POSITIONS[None], PAIR_MASSES, target)
    np.testing.assert_allclose(mom.centre_of_mass(out, PAIR_MASSES), target, atol=1e-14)
    np.testing.assert_allclose(out[0, 1] - out[0, 0], [4.0, 0.0, 0.0], atol=1e-14)


def test_fast_inverse_agrees_with_the_pseudo_inverse():
    rng = np.random.default_rng(5)
    masses = rng.uniform(1.0, 16.0, 6)
    pos = rng.normal(0.0, 1.5, (20, 6, 3))
    pos[:3] = pos[:3, :1] + np.linspace(0, 3, 6)[:, None] * [1.0, 2.0, -0.5]  # three linear
    inertia = mom.inertia_tensor(pos, masses)
    expected = np.linalg.pinv(inertia, rcond=mom.INERTIA_RCOND, hermitian=True)
    np.testing.assert_allclose(mom._pseudo_inverse(inertia), expected, rtol=1e-9, atol=1e-12)
