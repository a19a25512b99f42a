"""Energy restoration into stretches and bends, against finite differences and hand results."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gicnet_runtime.core import internal
from gicnet_runtime.unroll import energy_restore as er
from gicnet_runtime.unroll import momentum as mom
from tests.onnx_fixtures import ETHANOL_MASSES_AMU, ETHANOL_POSITIONS_A

MASSES = np.array(ETHANOL_MASSES_AMU)
#: The IC-row bonds of the fixtures' ethanol (C-C, C-O, 3 C-H methyl, 2 C-H, O-H).
BONDS = np.array([[1, 0], [2, 1], [3, 0], [4, 0], [5, 0], [6, 1], [7, 1], [8, 2]])
#: Its IC-row angles between real atoms (atom, vertex, third atom).
ANGLES = np.array([[2, 1, 0], [3, 0, 1], [4, 0, 1], [5, 0, 1], [6, 1, 0], [7, 1, 0], [8, 2, 1]])


def _state(seed: int, batch: int = 3):
    rng = np.random.default_rng(seed)
    pos = ETHANOL_POSITIONS_A + rng.normal(0.0, 0.05, (batch, 9, 3))
    vel = rng.normal(0.0, 0.01, (batch, 9, 3)) / np.sqrt(MASSES)[:, None]
    return pos, vel


def _coordinates(pos):
    return np.concatenate([internal.bond_lengths(pos, *BONDS.T),
                           internal.angles(pos, *ANGLES.T)], axis=-1)


def _rates_fd(pos, vel, h=1e-6):
    """d/dt of the bond lengths and angles along the velocities, central difference."""
    return (_coordinates(pos + h * vel) - _coordinates(pos - h * vel)) / (2 * h)


def _part(pos, vel):
    return er.stretch_bend_velocities(pos, vel, MASSES, BONDS, ANGLES)


def test_jacobian_matches_finite_differences():
    pos, _ = _state(0, batch=2)
    jac = er.jacobian(pos, BONDS, ANGLES)
    assert jac.shape == (2, 15, 9, 3)
    h = 1e-6
    for n in range(9):
        for k in range(3):
            step = np.zeros_like(pos)
            step[:, n, k] = h
            fd = (_coordinates(pos + step) - _coordinates(pos - step)) / (2 * h)
            np.testing.assert_allclose(jac[:, :, n, k], fd, atol=1e-8)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_stretch_bend_part_keeps_the_rates_and_nothing_else(seed):
    pos, vel = _state(seed)
    stretch = _part(pos, vel)
    np.testing.assert_allclose(_rates_fd(pos, stretch), _rates_fd(pos, vel), atol=1e-9)
    np.testing.assert_allclose(_rates_fd(pos, vel - stretch), 0.0, atol=1e-9)
    # the torsions are what is left: 21 internal degrees of freedom, 15 of them here
    assert np.linalg.norm(vel - stretch) > 0.1 * np.linalg.norm(vel)
    # mass-orthogonal split: the kinetic energy adds up
    np.testing.assert_allclose(
        mom.kinetic_energy_eV(stretch, MASSES) + mom.kinetic_energy_eV(vel - stretch, MASSES),
        mom.kinetic_energy_eV(vel, MASSES), rtol=1e-12)
    np.testing.assert_allclose(mom.linear_momentum(stretch, MASSES), 0.0, atol=1e-14)
    np.testing.assert_allclose(mom.angular_momentum(pos, stretch, MASSES), 0.0, atol=1e-14)


def test_diatomic_stretch_by_hand():
    # Masses 1 and 3 amu on the x axis, bond rate r' = (v0 - v1)·u with u = (x0 - x1)/|..| =
    # -x: the least-energy motion with that rate moves atom 0 by 3/4 r' u, atom 1 by -1/4 r' u.
    pos = np.array([[0.0, 0.0, 0.0], [1.2, 0.0, 0.0]])
    vel = np.array([[0.01, 0.02, 0.0], [-0.03, 0.0, 0.005]])
    rate = (vel[0] - vel[1]) @ np.array([-1.0, 0.0, 0.0])
    expected = np.array([[-0.75 * rate, 0.0, 0.0], [0.25 * rate, 0.0, 0.0]])
    out = er.stretch_bend_velocities(pos, vel, np.array([1.0, 3.0]), np.array([[0, 1]]),
                                     np.zeros((0, 3), dtype=int))
    np.testing.assert_allclose(out, expected, atol=1e-15)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_restoration_hits_the_target_and_changes_only_that_part(seed):
    pos, vel = _state(seed)
    rng = np.random.default_rng(seed)
    stretch = _part(pos, vel)
    target = mom.kinetic_energy_eV(vel, MASSES) \
        + rng.uniform(-0.3, 0.5, 3) * mom.kinetic_energy_eV(stretch, MASSES)
    out = er.restore_kinetic_energy(pos, vel, MASSES, BONDS, ANGLES, target)
    np.testing.assert_allclose(mom.kinetic_energy_eV(out, MASSES), target, rtol=1e-12)
    np.testing.assert_allclose(out - _part(pos, out), vel - stretch, atol=1e-15)
    np.testing.assert_allclose(mom.linear_momentum(out, MASSES),
                               mom.linear_momentum(vel, MASSES), atol=1e-14)
    np.testing.assert_allclose(mom.angular_momentum(pos, out, MASSES),
                               mom.angular_momentum(pos, vel, MASSES), atol=1e-14)


@pytest.mark.parametrize(("factor", "scale"), [(100.0, 2.0), (0.01, 0.5), (-1.0, 1.0)])
def test_restoration_clips_the_scale_and_leaves_impossible_targets(factor, scale):
    pos, vel = _state(7, batch=1)
    stretch = _part(pos, vel)
    rest = mom.kinetic_energy_eV(vel - stretch, MASSES)
    # factor: wanted stretch-bend energy over what it has; -1: less than the rest holds
    target = rest + factor * mom.kinetic_energy_eV(stretch, MASSES)
    out = er.restore_kinetic_energy(pos, vel, MASSES, BONDS, ANGLES, target)
    np.testing.assert_allclose(out, vel + (scale - 1.0) * stretch, atol=1e-15)


def test_a_linear_angle_leaves_the_velocities_unchanged():
    # O=C=O on a line: the angle's derivative is undefined, so nothing is restored.
    pos = np.array([[-1.16, 0.0, 0.0], [0.0, 0.0, 0.0], [1.16, 0.0, 0.0]])
    vel = np.array([[0.01, 0.002, 0.0], [-0.005, 0.0, 0.001], [0.0, -0.002, 0.0]])
    masses = np.array([16.0, 12.0, 16.0])
    out = er.restore_kinetic_energy(pos, vel, masses, np.array([[1, 0], [2, 1]]),
                                    np.array([[2, 1, 0]]), 1.0)
    np.testing.assert_array_equal(out, vel)
