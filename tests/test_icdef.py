"""gicnet_runtime.core.icdef: the .ic format, row validation and geometry checks."""

import numpy as np
import pytest
import torch
from ase.build import molecule

from gicnet_runtime.core.icdef import D0, D1, D2, ICDefinition, check_geometry, reference_angles_deg
from gicnet_runtime.errors import GeometryError, InputError
from gicnet_train import geometry as g
from gicnet_train.icbuild import build_icdef

ETHANOL = molecule("CH3CH2OH")
#: An MLatom-style .ic for ethanol in a scrambled atom order (1-based, 0/-1/-2 dummies).
ETHANOL_IC = """\
# atom ref1 ref2 ref3
3 0 -1 -2
2 3 0 -1
1 2 3 0
9 3 2 1
4 1 2 3
5 1 2 3
6 1 2 3
7 2 1 3
8 2 1 3
"""


def test_read_mlatom_ic_any_order_and_write_back(tmp_path):
    path = tmp_path / "ethanol.ic"
    path.write_text(ETHANOL_IC)
    icdef = ICDefinition.read(path)
    assert icdef.rows[0] == (2, D0, D1, D2)
    assert icdef.rows[1] == (1, 2, D0, D1)
    assert icdef.rows[3] == (8, 2, 1, 0)
    assert ICDefinition.from_ic_text(icdef.to_ic_text()) == icdef


def test_mlatom_ic_round_trips_real_geometry(tmp_path):
    icdef = ICDefinition.from_ic_text(ETHANOL_IC)
    pos = torch.tensor(ETHANOL.positions)[None]
    vel = torch.tensor(np.random.default_rng(0).normal(scale=0.01, size=(1, 9, 3)))
    masses = torch.tensor(ETHANOL.get_masses())
    q, q_dot, frame = g.to_internal(pos, vel, masses, icdef)
    pos2, vel2 = g.to_cartesian(q, q_dot, icdef, frame)
    assert (pos2 - pos).abs().max() < 1e-9 and (vel2 - vel).abs().max() < 1e-9


@pytest.mark.parametrize("text, message", [
    ("1 0 -1 -2\n2 1 0 -1\n2 1 0 -1\n", "exactly once"),      # atom 2 twice, 3 missing
    ("1 0 -1 -2\n2 1 0 -1\n4 2 1 0\n", "exactly once"),       # atom 4 of 3
    ("1 0 -1 -2\n3 2 0 -1\n2 1 0 -1\n", "not placed"),        # refers to a later atom
    ("1 0 -1 -2\n2 1 1 -1\n3 2 1 0\n", "repeats"),            # repeated reference
    ("1 0 -1\n", "4 integers"),
    ("1 0 -1 x\n", "4 integers"),
    ("\n# nothing\n", "no rows"),
])
def test_bad_ic_files_give_clear_errors(text, message):
    with pytest.raises(InputError, match=message):
        ICDefinition.from_ic_text(text)


def test_unreadable_ic_file(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        ICDefinition.read(tmp_path / "missing.ic")


def test_collinear_reference_triple_is_rejected():
    icdef = build_icdef(ETHANOL.positions, ETHANOL.numbers, ETHANOL.get_masses())
    check_geometry(ETHANOL.positions, ETHANOL.get_masses(), icdef)  # fine as built
    k = 5
    atom, r1, r2, _ = icdef.rows[k]
    pos = ETHANOL.positions.copy()
    # Put the atom on the line through ref1 and ref2: angle atom-ref1-ref2 = 180 deg.
    direction = (pos[r1] - pos[r2]) / np.linalg.norm(pos[r1] - pos[r2])
    pos[atom] = pos[r1] + 1.09 * direction
    angles = reference_angles_deg(pos, ETHANOL.get_masses(), icdef)
    assert angles[k, 0] == pytest.approx(180.0, abs=1e-6)
    with pytest.raises(GeometryError, match=f"IC row {k + 1} is collinear"):
        check_geometry(pos, ETHANOL.get_masses(), icdef)


def test_atoms_on_top_of_each_other_are_rejected():
    icdef = build_icdef(ETHANOL.positions, ETHANOL.numbers, ETHANOL.get_masses())
    pos = ETHANOL.positions.copy()
    pos[4] = pos[3] + 0.01
    with pytest.raises(GeometryError, match="atoms 4 and 5"):
        check_geometry(pos, ETHANOL.get_masses(), icdef)


def test_check_geometry_shape_and_nan():
    icdef = build_icdef(ETHANOL.positions, ETHANOL.numbers, ETHANOL.get_masses())
    with pytest.raises(InputError, match="shape"):
        check_geometry(np.zeros((8, 3)), ETHANOL.get_masses(), icdef)
    pos = ETHANOL.positions.copy()
    pos[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        check_geometry(pos, ETHANOL.get_masses(), icdef)
