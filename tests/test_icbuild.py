"""gicnet_train.icbuild: automatic IC definitions from covalent bonds."""

import numpy as np
import pytest
from ase.build import molecule

from gicnet_runtime.core.icdef import MIN_REFERENCE_ANGLE_DEG, reference_angles_deg
from gicnet_train.icbuild import MIN_BUILD_ANGLE_DEG, bond_matrix, build_icdef


@pytest.mark.parametrize("name", ["CH3CH2OH", "C6H6", "CH3COOH", "C2H6", "CH4", "H2O", "NH3",
                                  "CH3CH2NH2", "C4H4NH"])
def test_builder_gives_well_conditioned_rows(name):
    atoms = molecule(name)
    icdef = build_icdef(atoms.positions, atoms.numbers, atoms.get_masses())
    assert sorted(r[0] for r in icdef.rows) == list(range(len(atoms)))
    angles = reference_angles_deg(atoms.positions, atoms.get_masses(), icdef)
    assert np.all(angles >= MIN_BUILD_ANGLE_DEG - 1e-9)
    assert np.all(angles <= 180 - MIN_BUILD_ANGLE_DEG + 1e-9)
    assert MIN_BUILD_ANGLE_DEG > MIN_REFERENCE_ANGLE_DEG


@pytest.mark.parametrize("name", ["CH3CH2OH", "C6H6", "CH3COOH", "CH3CH2NH2"])
def test_rows_refer_to_bonded_atoms(name):
    """Each row's distance is a covalent bond once the atom is not one of the first two."""
    atoms = molecule(name)
    bonded = bond_matrix(atoms.positions, atoms.numbers)
    icdef = build_icdef(atoms.positions, atoms.numbers, atoms.get_masses())
    for atom, ref1, _, _ in icdef.rows[1:]:
        assert bonded[atom, ref1]


def test_ethanol_bonds_are_chemistry():
    atoms = molecule("CH3CH2OH")  # C C O H H H H H H
    bonded = bond_matrix(atoms.positions, atoms.numbers)
    assert bonded.sum() // 2 == 8  # C-C, C-O, O-H, 5 C-H
    assert bonded[0, 1] and bonded[1, 2] and not bonded[0, 2]


def test_linear_molecule_is_rejected():
    from gicnet_runtime.errors import GeometryError

    atoms = molecule("CO2")
    with pytest.raises(GeometryError, match="linear"):
        build_icdef(atoms.positions, atoms.numbers, atoms.get_masses())
