"""Reference engines: units, forces, versions, and ANI-1x built offline from the wheel."""

from __future__ import annotations

from importlib import metadata

import numpy as np
import pytest
import torch
from ase import units
from ase.build import molecule

from gicnet_runtime.errors import InputError
from gicnet_runtime.reference import engines

ENGINE_NAMES = ["gfn2", "gfn1", "ani1x"]
#: Experimental O-H stretching force constant of alcohols, ~7.8 mdyn/Å = 48.7 eV/Å²
#: (harmonic O-H stretch near 3800 cm^-1); every engine must land within 25 %.
OH_FORCE_CONSTANT_EV_PER_A2 = 48.7


@pytest.fixture(scope="module")
def calculators():
    return {name: engines.make_calculator(name) for name in ENGINE_NAMES}


def ethanol():
    return molecule("CH3CH2OH")


def hydroxyl_pair(atoms) -> tuple[int, int]:
    oxygen = int(np.flatnonzero(atoms.numbers == 8)[0])
    hydrogens = np.flatnonzero(atoms.numbers == 1)
    distances = np.linalg.norm(atoms.positions[hydrogens] - atoms.positions[oxygen], axis=1)
    return oxygen, int(hydrogens[np.argmin(distances)])


def energy_eV(calc, atoms) -> float:
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy()


def test_unknown_engine_is_an_input_error():
    with pytest.raises(InputError, match="gfn2, gfn1, ani1x"):
        engines.make_calculator("dftb")


def test_versions_name_the_installed_packages():
    assert engines.get_engine("gfn2").version() == (
        f"GFN2-xTB (tblite {metadata.version('tblite')}, accuracy {engines.TBLITE_ACCURACY})")
    assert engines.get_engine("ani1x").version() == (
        f"ANI-1x (torchani {metadata.version('torchani')})")


@pytest.mark.parametrize("name, method", [("gfn2", "GFN2-xTB"), ("gfn1", "GFN1-xTB")])
def test_tblite_calculator_matches_low_level_api_in_ev(calculators, name, method):
    """tblite's own interface works in Hartree and Bohr; convert with ASE's constants."""
    from tblite.interface import Calculator

    atoms = ethanol()
    direct = Calculator(method, atoms.numbers, atoms.positions / units.Bohr)
    direct.set("accuracy", engines.TBLITE_ACCURACY)
    direct.set("verbosity", 0)
    result = direct.singlepoint()
    atoms.calc = calculators[name]
    np.testing.assert_allclose(atoms.get_potential_energy(),
                               result.get("energy") * units.Hartree, rtol=1e-12)
    np.testing.assert_allclose(atoms.get_forces(),
                               -result.get("gradient") * units.Hartree / units.Bohr, atol=1e-9)


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_forces_are_minus_energy_gradient(calculators, name):
    atoms = ethanol()
    atoms.positions += np.random.default_rng(3).normal(scale=0.03, size=atoms.positions.shape)
    atoms.calc = calculators[name]
    forces = atoms.get_forces()
    step_A = 5e-4  # central-difference truncation ~ step^2 |E'''| / 6 ~ 5e-5 eV/A here
    for atom, axis in [(0, 0), (2, 1), (8, 2)]:
        shifted = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[atom, axis] += sign * step_A
            shifted.append(energy_eV(calculators[name], moved))
        gradient = (shifted[0] - shifted[1]) / (2 * step_A)
        np.testing.assert_allclose(forces[atom, axis], -gradient, atol=1e-4)


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_hydroxyl_stretch_force_constant(calculators, name):
    """d²E/dr² of the O-H bond (moving H along it) against the experimental value."""
    atoms = ethanol()
    oxygen, hydrogen = hydroxyl_pair(atoms)
    bond = atoms.positions[hydrogen] - atoms.positions[oxygen]
    bond /= np.linalg.norm(bond)
    step_A = 0.01
    energies = []
    for sign in (1, 0, -1):
        moved = atoms.copy()
        moved.positions[hydrogen] += sign * step_A * bond
        energies.append(energy_eV(calculators[name], moved))
    k = (energies[0] - 2 * energies[1] + energies[2]) / step_A**2
    assert k == pytest.approx(OH_FORCE_CONSTANT_EV_PER_A2, rel=0.25)


def test_ani1x_is_built_offline_and_matches_torchani_builtin(monkeypatch):
    import torchani
    from torchani import neurochem

    def no_download(info_file):
        raise AssertionError(f"torchani resource lookup/download attempted for {info_file}")

    monkeypatch.setattr(neurochem, "parse_neurochem_resources", no_download)
    from gicnet_train import ani1x

    ours = ani1x.build_model()
    assert ours.species == ["H", "C", "N", "O"]

    folder = ani1x.resource_dir()
    monkeypatch.setattr(neurochem, "parse_neurochem_resources", lambda info_file: (
        str(folder / "rHCNO-5.2R_16-3.5A_a4-8.params"), str(folder / "sae_linfit.dat"),
        str(folder / "train"), 8))
    builtin = torchani.models.ANI1x(periodic_table_index=True).double()

    atoms = ethanol()
    coordinates = torch.tensor(atoms.positions[None], dtype=torch.float64)
    reference_hartree = builtin((torch.tensor(atoms.numbers[None]), coordinates)).energies
    species = torch.tensor([[ours.species.index(s) for s in atoms.get_chemical_symbols()]])
    ours_hartree = ours((species, coordinates)).energies
    torch.testing.assert_close(ours_hartree, reference_hartree, rtol=1e-12, atol=1e-10)
    atoms.calc = engines.make_calculator("ani1x")
    np.testing.assert_allclose(atoms.get_potential_energy(),
                               reference_hartree.item() * units.Hartree, rtol=1e-12)


def test_ani1x_rejects_elements_it_was_not_trained_on():
    with pytest.raises(InputError, match=r"\[16\]"):
        engines.check_elements(engines.get_engine("ani1x"), molecule("CH3SH").numbers)
    engines.check_elements(engines.get_engine("gfn2"), molecule("CH3SH").numbers)
