"""Initial conditions from extended XYZ and from MLatom's xyz + velocity pair."""

import numpy as np
import pytest

from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError
from gicnet_runtime.io.formats import write_trajectory
from gicnet_runtime.io.initial import initial_conditions_for, read_initial_conditions
from tests.onnx_fixtures import (
    ETHANOL_MASSES_AMU,
    ETHANOL_POSITIONS_A,
    ETHANOL_Z,
    description,
    thermal_velocities,
)

SYMBOLS = ["C", "C", "O", "H", "H", "H", "H", "H", "H"]


def _extxyz(path, velocities):
    traj = Trajectory(time_fs=np.arange(len(velocities)),
                      positions=np.broadcast_to(ETHANOL_POSITIONS_A, velocities.shape),
                      velocities=velocities, atomic_numbers=ETHANOL_Z,
                      masses=ETHANOL_MASSES_AMU)
    return write_trajectory(traj, path)


def test_extxyz_frames_are_initial_conditions_in_a_per_fs(tmp_path):
    vel = thermal_velocities(0, count=3)
    conditions = read_initial_conditions(_extxyz(tmp_path / "init.extxyz", vel))
    assert len(conditions) == 3
    np.testing.assert_allclose(conditions.velocities, vel, rtol=1e-12)
    np.testing.assert_allclose(conditions.positions[2], ETHANOL_POSITIONS_A, rtol=1e-12)
    conditions.check_model(description())


def _xyz_text(blocks, columns):
    lines = []
    for block in blocks:
        lines += [str(len(block)), "comment"]
        lines += [" ".join([*head, *(f"{x:.12f}" for x in row)])
                  for head, row in zip(columns, block)]
    return "\n".join(lines) + "\n"


def test_mlatom_pair(tmp_path):
    vel = thermal_velocities(1, count=2)
    xyz = tmp_path / "init.xyz"
    vxyz = tmp_path / "init.vxyz"
    xyz.write_text(_xyz_text([ETHANOL_POSITIONS_A] * 2, [[s] for s in SYMBOLS]))
    vxyz.write_text(_xyz_text(vel, [[]] * 9))  # MLatom writes bare vx vy vz lines
    conditions = read_initial_conditions(xyz, vxyz)
    np.testing.assert_allclose(conditions.velocities, vel, atol=1e-12)
    np.testing.assert_array_equal(conditions.atomic_numbers, ETHANOL_Z)


def test_mlatom_pair_with_too_few_velocity_blocks(tmp_path):
    xyz, vxyz = tmp_path / "a.xyz", tmp_path / "a.vxyz"
    xyz.write_text(_xyz_text([ETHANOL_POSITIONS_A] * 2, [[s] for s in SYMBOLS]))
    vxyz.write_text(_xyz_text(thermal_velocities(1, count=1), [[]] * 9))
    with pytest.raises(InputError, match="1 velocity blocks but"):
        read_initial_conditions(xyz, vxyz)


def test_plain_xyz_without_velocities(tmp_path):
    xyz = tmp_path / "a.xyz"
    xyz.write_text(_xyz_text([ETHANOL_POSITIONS_A], [[s] for s in SYMBOLS]))
    with pytest.raises(InputError, match="no velocities"):
        read_initial_conditions(xyz)


def test_atom_order_is_checked_against_the_model(tmp_path):
    xyz, vxyz = tmp_path / "a.xyz", tmp_path / "a.vxyz"
    swapped = ["O", "C", "C", *SYMBOLS[3:]]
    xyz.write_text(_xyz_text([ETHANOL_POSITIONS_A], [[s] for s in swapped]))
    vxyz.write_text(_xyz_text(thermal_velocities(1, count=1), [[s] for s in swapped]))
    with pytest.raises(InputError, match="atom 1 is O in the initial conditions but C"):
        initial_conditions_for(description(), xyz, vxyz, tmp_path)


def test_default_file_next_to_the_model(tmp_path):
    with pytest.raises(InputError, match="initial.extxyz does not exist"):
        initial_conditions_for(description(), None, None, tmp_path)
    _extxyz(tmp_path / "initial.extxyz", thermal_velocities(2, count=1))
    assert len(initial_conditions_for(description(), None, None, tmp_path)) == 1


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_initial_conditions(tmp_path / "none.extxyz")
    bad = tmp_path / "bad.extxyz"
    bad.write_text("3\nfoo\nC 0 0\n")
    with pytest.raises(InputError, match="cannot read"):
        read_initial_conditions(bad)


def test_a_velocity_line_with_four_numbers_is_refused(tmp_path):
    """A 4-column numeric row is ambiguous (which three are the velocity?); a symbol then
    three numbers, or three numbers, are read."""
    import pytest

    from gicnet_runtime.errors import InputError
    from gicnet_runtime.io.initial import read_velocity_blocks

    good = tmp_path / "good.vxyz"
    good.write_text("2\n\nH 0.1 0.2 0.3\n0.4 0.5 0.6\n")
    assert read_velocity_blocks(good, 2).tolist() == [[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]]
    bad = tmp_path / "bad.vxyz"
    bad.write_text("2\n\n1.0 0.1 0.2 0.3\n1.0 0.4 0.5 0.6\n")
    with pytest.raises(InputError, match="line 3 has 4 columns"):
        read_velocity_blocks(bad, 2)
