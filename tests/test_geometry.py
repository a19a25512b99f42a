"""gicnet_train.geometry: round trips, exact rates, invariances, ASE as the reference."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gicnet_runtime.core.icdef import D0, D1, D2, ICDefinition
from gicnet_runtime.errors import InputError
from gicnet_train import geometry as g
from gicnet_train.icbuild import build_icdef

from .tolerances import TOL

ETHANOL = molecule("CH3CH2OH")


def ethanol_icdef() -> ICDefinition:
    return build_icdef(ETHANOL.positions, ETHANOL.numbers, ETHANOL.get_masses())


@st.composite
def random_molecules(draw):
    """A random IC definition over N atoms and a batch of 25 random conformations."""
    n = draw(st.integers(3, 12))
    order = draw(st.permutations(range(n)))
    rows = [(order[0], D0, D1, D2), (order[1], order[0], D0, D1),
            (order[2], order[1], order[0], D0)]
    for k in range(3, n):
        refs = draw(st.lists(st.sampled_from(order[:k]), min_size=3, max_size=3, unique=True))
        rows.append((order[k], *refs))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    pos = rng.normal(scale=1.5, size=(25, n, 3))
    vel = rng.normal(scale=0.02, size=(25, n, 3))
    return ICDefinition(tuple(rows)), torch.tensor(pos), torch.tensor(vel)


def well_conditioned(pos: torch.Tensor, icdef: ICDefinition, min_deg: float = 8.0):
    """Mask of conformations whose reference angles stay min_deg away from 0 and 180."""
    dummies = torch.tensor(g.DUMMY_POINTS_A, dtype=pos.dtype).flip(0).expand(pos.shape[0], 3, 3)
    pts = torch.cat([pos, dummies], dim=1)
    rows = torch.tensor(icdef.rows) % (icdef.n_atoms + 3)
    p = [pts[:, rows[:, j]] for j in range(4)]
    ok = torch.ones(pos.shape[0], dtype=torch.bool)
    for a, b, c in ((p[0], p[1], p[2]), (p[1], p[2], p[3])):
        ang = g.angle(g.Dual(a, a), g.Dual(b, b), g.Dual(c, c)).v[..., 0]
        ok &= ((ang > np.radians(min_deg)) & (ang < np.radians(180 - min_deg))).all(1)
        ok &= ((a - b).norm(dim=-1) > 0.3).all(1) & ((b - c).norm(dim=-1) > 0.3).all(1)
    return ok


def _round_trip_error(case) -> int:
    """Assert the float64 round trip of one random molecule; return conformations checked."""
    icdef, pos, vel = case
    keep = well_conditioned(pos, icdef)
    pos, vel = pos[keep], vel[keep]
    q, q_dot = g.cartesian_to_internal(pos, vel, icdef)
    pos2, vel2 = g.internal_to_cartesian(q, q_dot, icdef)
    assert torch.all((pos2 - pos).abs() < 1e-9)
    assert torch.all((vel2 - vel).abs() < 1e-9)
    return len(pos)


def test_round_trip_random_molecules_float64():
    """>= 1000 random conformations of random molecules: error < 1e-9 Å and Å/fs."""
    checked = []

    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(random_molecules())
    def run(case):
        checked.append(_round_trip_error(case))

    run()
    assert sum(checked) >= 1000


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lab_frame_round_trip_with_body_frame(dtype):
    rng = np.random.default_rng(1)
    icdef = ethanol_icdef()
    pos = torch.tensor(ETHANOL.positions + rng.normal(scale=0.05, size=(64, 9, 3)), dtype=dtype)
    pos = pos + torch.tensor(rng.normal(scale=3.0, size=(64, 1, 3)), dtype=dtype)
    vel = torch.tensor(rng.normal(scale=0.01, size=(64, 9, 3)), dtype=dtype)
    masses = torch.tensor(ETHANOL.get_masses(), dtype=dtype)
    q, q_dot, frame = g.to_internal(pos, vel, masses, icdef)
    pos2, vel2 = g.to_cartesian(q, q_dot, icdef, frame)
    torch.testing.assert_close(pos2, pos, atol=TOL[dtype], rtol=0)
    torch.testing.assert_close(vel2, vel, atol=TOL[dtype] * 1e-1, rtol=0)
    # In its own body frame the first row sits at theta = pi/2, phi = 0.
    torch.testing.assert_close(q[:, 0, 1], torch.full_like(q[:, 0, 1], np.pi / 2),
                               atol=TOL[dtype], rtol=0)
    torch.testing.assert_close(q[:, 0, 2], torch.zeros_like(q[:, 0, 2]), atol=TOL[dtype], rtol=0)


def test_body_frame_rotation_is_proper_rotation():
    rng = np.random.default_rng(2)
    pos = torch.tensor(rng.normal(size=(10, 9, 3)))
    rot = g.body_frame_rotation(pos, ethanol_icdef())
    eye = torch.eye(3, dtype=pos.dtype).expand(10, 3, 3)
    torch.testing.assert_close(rot @ rot.transpose(-1, -2), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(10, dtype=pos.dtype))


def test_values_match_ase_distances_angles_dihedrals():
    """Independent reference: ASE's get_distance/get_angle/get_dihedral on every row."""
    rng = np.random.default_rng(3)
    atoms = ETHANOL.copy()
    atoms.positions += rng.normal(scale=0.1, size=atoms.positions.shape)
    icdef = ethanol_icdef()
    pos = torch.tensor(atoms.positions)
    q, _ = g.cartesian_to_internal(pos, torch.zeros_like(pos), icdef)
    dummies = Atoms("X3", positions=g.DUMMY_POINTS_A)
    full = atoms + dummies  # dummy D0, D1, D2 at indices N, N+1, N+2
    n = len(atoms)

    def idx(i):
        return i if i >= 0 else n - 1 - i

    for k, (a, r1, r2, r3) in enumerate(icdef.rows):
        a, r1, r2, r3 = map(idx, (a, r1, r2, r3))
        assert q[k, 0].item() == pytest.approx(full.get_distance(a, r1), abs=1e-12)
        assert np.degrees(q[k, 1].item()) == pytest.approx(full.get_angle(a, r1, r2), abs=1e-9)
        ase_phi = full.get_dihedral(a, r1, r2, r3)  # in [0, 360)
        assert np.degrees(q[k, 2].item()) % 360 == pytest.approx(ase_phi, abs=1e-9)


def test_rates_equal_autograd_jvp():
    """q_dot is the exact directional derivative of q along the velocities."""
    rng = np.random.default_rng(4)
    icdef = ethanol_icdef()
    pos = torch.tensor(ETHANOL.positions + rng.normal(scale=0.05, size=(4, 9, 3)))
    vel = torch.tensor(rng.normal(scale=0.01, size=(4, 9, 3)))
    _, q_dot = g.cartesian_to_internal(pos, vel, icdef)
    _, jvp = torch.func.jvp(lambda x: g.cartesian_to_internal(x, vel, icdef)[0], (pos,), (vel,))
    torch.testing.assert_close(q_dot, jvp, atol=1e-12, rtol=1e-10)


def test_translation_invariance_and_rotation_invariance():
    rng = np.random.default_rng(5)
    icdef = ethanol_icdef()
    masses = torch.tensor(ETHANOL.get_masses())
    pos = torch.tensor(ETHANOL.positions + rng.normal(scale=0.05, size=(9, 3)))
    vel = torch.tensor(rng.normal(scale=0.01, size=(9, 3)))
    q, q_dot, _ = g.to_internal(pos, vel, masses, icdef)
    shift = torch.tensor([3.0, -7.0, 11.0], dtype=pos.dtype)
    q_t, q_dot_t, _ = g.to_internal(pos + shift, vel, masses, icdef)
    torch.testing.assert_close(q_t, q, atol=1e-12, rtol=0)
    torch.testing.assert_close(q_dot_t, q_dot, atol=1e-12, rtol=0)
    rot = torch.tensor(_random_rotation(rng))
    q_r, q_dot_r, _ = g.to_internal(pos @ rot.T, vel @ rot.T, masses, icdef)
    # In the body frame every coordinate is rotation invariant ...
    torch.testing.assert_close(q_r, q, atol=1e-12, rtol=0)
    torch.testing.assert_close(q_dot_r, q_dot, atol=1e-12, rtol=0)
    # ... and in any fixed frame, rows placed on real atoms are.
    real = [k for k, row in enumerate(icdef.rows) if min(row[1:]) >= 0]
    assert len(real) == icdef.n_atoms - 3
    eye = torch.eye(3, dtype=pos.dtype)
    q_f, _, _ = g.to_internal(pos, vel, masses, icdef, rotation=eye)
    q_fr, _, _ = g.to_internal(pos @ rot.T, vel @ rot.T, masses, icdef, rotation=eye)
    torch.testing.assert_close(q_fr[real], q_f[real], atol=1e-12, rtol=0)
    assert (q_fr[:3] - q_f[:3]).abs().max() > 1e-3  # the orientation rows do see the rotation


def _random_rotation(rng) -> np.ndarray:
    a, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return a * np.sign(np.linalg.det(a))


def test_dihedral_continuous_across_pi_after_unwrap():
    """An atom swept through the ±pi cut: raw phi jumps by 2 pi, unwrapped phi is smooth."""
    icdef = ICDefinition(((0, D0, D1, D2), (1, 0, D0, D1), (2, 1, 0, D0), (3, 2, 1, 0)))
    angles = torch.linspace(2.8, 3.5, 50, dtype=torch.float64)
    q = torch.tensor([[2.0, 1.5, 0.3], [1.5, 1.9, 1.0], [1.4, 1.9, 2.0], [1.1, 1.9, 0.0]],
                     dtype=torch.float64).repeat(50, 1, 1)
    q[:, 3, 2] = angles
    pos, _ = g.internal_to_cartesian(g.wrap_angle(q), torch.zeros_like(q), icdef)
    raw, _ = g.cartesian_to_internal(pos, torch.zeros_like(pos), icdef)
    assert raw[:, 3, 2].diff().abs().max() > 6.0  # the cut is crossed
    unwrapped = g.unwrap_dihedral(raw[:, 3, 2], reference=raw[0, 3, 2])
    torch.testing.assert_close(unwrapped, angles, atol=1e-10, rtol=0)


def test_wrong_shapes_raise_clear_errors():
    icdef = ethanol_icdef()
    with pytest.raises(InputError, match="shape"):
        g.cartesian_to_internal(torch.zeros(2, 8, 3), torch.zeros(2, 8, 3), icdef)
    with pytest.raises(InputError, match="differs"):
        g.cartesian_to_internal(torch.zeros(2, 9, 3), torch.zeros(3, 9, 3), icdef)
    with pytest.raises(InputError, match="shape"):
        g.internal_to_cartesian(torch.zeros(9, 2), torch.zeros(9, 2), icdef)


def test_cross_products_match_numpy_with_broadcasting():
    """The training path (linalg.cross) and the exported path (gathers) against numpy."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4, 1, 5, 3)), rng.normal(size=(1, 6, 5, 3))
    want = np.cross(a, b)
    for cross in (g._cross, g.cross_gathers):
        got = cross(torch.from_numpy(a), torch.from_numpy(b)).numpy()
        assert got.shape == (4, 6, 5, 3)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_exported_dual_cross_product_is_the_three_cross_products_bit_for_bit():
    """d_cross as exported (shared gathers, tangent summed before the last gather) gives
    the float32 numbers of the value and the two tangent terms computed as three
    textbook cross products a[NEXT] b[AFTER] - a[AFTER] b[NEXT], and numpy's to rounding."""
    rng = np.random.default_rng(4)
    a, b = (g.Dual(*(torch.from_numpy(rng.normal(size=(7, 5, 3)).astype(np.float32))
                     for _ in range(2))) for _ in range(2))
    nxt, after = [1, 2, 0], [2, 0, 1]

    def textbook(x, y):
        return x[..., nxt] * y[..., after] - x[..., after] * y[..., nxt]

    got = g.d_cross_gathers(a, b)
    assert torch.equal(got.v, textbook(a.v, b.v))
    assert torch.equal(got.d, textbook(a.d, b.v) + textbook(a.v, b.d))
    want = np.cross(a.d.numpy(), b.v.numpy()) + np.cross(a.v.numpy(), b.d.numpy())
    np.testing.assert_allclose(got.d.numpy(), want, rtol=0, atol=1e-5)
