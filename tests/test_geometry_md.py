"""Internal-coordinate rates against a real MD trajectory (ASE velocity Verlet, GFN2-xTB)."""

import numpy as np
import pytest
import torch
from ase import units
from ase.build import molecule
from ase.md.verlet import VelocityVerlet
from tblite.ase import TBLite

from gicnet_runtime.units import ase_velocities_to_a_per_fs
from gicnet_train import geometry as g
from gicnet_train.icbuild import build_icdef

DT_FS = 0.05
N_STEPS = 120


@pytest.fixture(scope="module")
def md_trajectory():
    """Ethanol, 600 K initial velocities, velocity Verlet at 0.05 fs: (pos Å, vel Å/fs)."""
    atoms = molecule("CH3CH2OH")
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    rng = np.random.default_rng(7)
    kt = units.kB * 600.0
    atoms.set_momenta(rng.normal(size=(9, 3)) * np.sqrt(atoms.get_masses() * kt)[:, None])
    dyn = VelocityVerlet(atoms, timestep=DT_FS * units.fs)
    pos, vel = [], []
    for _ in range(N_STEPS):
        pos.append(atoms.get_positions())
        vel.append(ase_velocities_to_a_per_fs(atoms.get_velocities()))
        dyn.run(1)
    return atoms, torch.tensor(np.array(pos)), torch.tensor(np.array(vel))


def test_rates_match_finite_differences_along_md(md_trajectory):
    atoms, pos, vel = md_trajectory
    icdef = build_icdef(pos[0].numpy(), atoms.numbers, atoms.get_masses())
    masses = torch.tensor(atoms.get_masses())
    frame0 = g.to_internal(pos[:1], vel[:1], masses, icdef)[2]
    rotation = frame0.rotation[0]  # one fixed frame for the whole trajectory
    q, q_dot, _ = g.to_internal(pos, vel, masses, icdef, rotation=rotation)
    q[..., 2] = g.unwrap_dihedral(q[..., 2], q[:1, :, 2])
    fd = (q[2:] - q[:-2]) / (2 * DT_FS)
    # Central differences err by dt^2/6 q'''; estimate q''' from the data itself.
    third = (q[4:] - 2 * q[3:-1] + 2 * q[1:-3] - q[:-4]) / (2 * DT_FS**3)
    bound = DT_FS**2 / 6 * third.abs().amax(0) * 3 + 1e-10
    err = (fd - q_dot[1:-1]).abs().amax(0)
    assert torch.all(err <= bound), (err / bound).max()
    assert err.max() > 0  # the comparison is not vacuous
    # FD and analytic rates agree to 1e-4 of the largest rate (truncation ~3e-5 here).
    assert (err.max() / q_dot.abs().max()) < 1e-4


def test_velocities_rebuilt_from_rates_match_md(md_trajectory):
    atoms, pos, vel = md_trajectory
    icdef = build_icdef(pos[0].numpy(), atoms.numbers, atoms.get_masses())
    masses = torch.tensor(atoms.get_masses())
    q, q_dot, frame = g.to_internal(pos, vel, masses, icdef)
    pos2, vel2 = g.to_cartesian(q, q_dot, icdef, frame)
    assert (vel2 - vel).abs().max() < 1e-9
    assert (pos2 - pos).abs().max() < 1e-9
    assert vel.abs().max() > 1e-3  # real, moving atoms (Å/fs)
