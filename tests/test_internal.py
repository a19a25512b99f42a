"""numpy internal coordinates: ASE as the oracle for angles and dihedrals, the torch GIC
transforms (gicnet_train.geometry) as the oracle for q, q_dot and their inverse."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gicnet_runtime.core import internal
from gicnet_runtime.core.icdef import ICDefinition
from gicnet_runtime.errors import InputError
from gicnet_train import geometry as geo
from tests.onnx_fixtures import (
    ETHANOL_IC_ROWS,
    ETHANOL_MASSES_AMU,
    ETHANOL_POSITIONS_A,
    ETHANOL_Z,
    thermal_velocities,
)

ICDEF = ICDefinition(ETHANOL_IC_ROWS)
MASSES = np.asarray(ETHANOL_MASSES_AMU)


def _structures(seed: int, count: int = 5):
    rng = np.random.default_rng(seed)
    pos = ETHANOL_POSITIONS_A + rng.normal(0.0, 0.08, (count, 9, 3))
    return pos, thermal_velocities(seed, count=count)


@given(st.integers(0, 10_000))
@settings(max_examples=20, deadline=None)
def test_angles_and_dihedrals_match_ase(seed):
    from ase import Atoms

    pos, _ = _structures(seed, 1)
    atoms = Atoms(numbers=ETHANOL_Z, positions=pos[0])
    for i, j, k, m in [(3, 0, 1, 2), (8, 2, 1, 0), (6, 1, 0, 4)]:
        assert np.degrees(internal.angles(pos[0], i, j, k)) == pytest.approx(
            atoms.get_angle(i, j, k), abs=1e-9)
        ours = np.degrees(internal.dihedrals(pos[0], i, j, k, m)) % 360.0
        theirs = atoms.get_dihedral(i, j, k, m)
        assert min(abs(ours - theirs), 360.0 - abs(ours - theirs)) < 1e-8
        assert internal.bond_lengths(pos[0], i, j) == pytest.approx(atoms.get_distance(i, j))


def test_gic_transforms_match_the_torch_ones():
    pos, vel = _structures(3)
    q, q_dot, rotation = internal.to_internal(pos, vel, MASSES, ICDEF)
    tq, tq_dot, frame = geo.to_internal(torch.tensor(pos), torch.tensor(vel),
                                        torch.tensor(MASSES), ICDEF)
    np.testing.assert_allclose(q, tq.numpy(), atol=1e-12)
    np.testing.assert_allclose(q_dot, tq_dot.numpy(), atol=1e-9)  # finite-difference rates
    np.testing.assert_allclose(rotation, frame.rotation.numpy(), atol=1e-12)
    body, body_vel = internal.to_body_cartesian(q, q_dot, ICDEF)
    tpos, tvel = geo.internal_to_cartesian(tq, tq_dot, ICDEF)
    np.testing.assert_allclose(body, tpos.numpy(), atol=1e-10)
    np.testing.assert_allclose(body_vel, tvel.numpy(), atol=1e-9)
    np.testing.assert_allclose(internal.body_positions_to_internal(body, ICDEF), q, atol=1e-10)


def test_coordinate_parsing():
    c = internal.Coordinate.parse("dihedral 4 1 2 3", 9)
    assert c.atoms == (3, 0, 1, 2) and c.label() == "dihedral 4 1 2 3" and c.unit == "rad"
    for bad in ("torsion 1 2 3 4", "bond 1", "angle 1 2 2", "bond 1 10", "bond a b"):
        with pytest.raises(InputError):
            internal.Coordinate.parse(bad, 9)
