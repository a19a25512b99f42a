"""Trajectory readers and writers: exact round trips, ASE interoperability, units, bad files."""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest
from ase import Atoms, units
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_masses
from ase.io import read as ase_read
from ase.io import write as ase_write
from ase.io.trajectory import Trajectory as AseTrajectory

from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError
from gicnet_runtime.io.formats import read_trajectories, read_trajectory, write_trajectory

SUFFIXES = {"h5md": ".h5", "extxyz": ".xyz", "traj": ".traj", "npz": ".npz"}
# Velocities pass through ASE's momenta (v * m in ASE units) in extxyz and .traj: a
# multiply and a divide, each rounded once, hence a few ulp.
VELOCITY_RTOL = {"h5md": 0.0, "npz": 0.0, "extxyz": 1e-15, "traj": 1e-15}
INFO = {"engine": "gfn2", "seed": np.int64(7), "temperature_K": 300.0,
        "path": 'C:\\data\\"ethanol".xyz', "list": [1, 2.5], "nested": {"a": None}}


def make_trajectory(n_frames: int = 6, energies: bool = True, info=None) -> Trajectory:
    atoms = molecule("CH3CH2OH")
    rng = np.random.default_rng(0)
    kinetic = rng.random(n_frames) if energies else None
    potential = -310.0 + rng.random(n_frames) if energies else None
    return Trajectory(
        time_fs=np.arange(n_frames) * 0.5 + 0.1,
        positions=atoms.positions + 0.05 * rng.standard_normal((n_frames, len(atoms), 3)),
        velocities=0.01 * rng.standard_normal((n_frames, len(atoms), 3)),
        atomic_numbers=atoms.numbers,
        masses=atoms.get_masses(),
        potential_energy=potential,
        kinetic_energy=kinetic,
        info=INFO if info is None else info,
    )


def assert_same(a: Trajectory, b: Trajectory, fmt: str) -> None:
    for name in ("time_fs", "positions", "atomic_numbers", "masses",
                 "potential_energy", "kinetic_energy"):
        x, y = getattr(a, name), getattr(b, name)
        if x is None:
            assert y is None, name
        else:
            np.testing.assert_array_equal(y, x, err_msg=name)
    np.testing.assert_allclose(b.velocities, a.velocities, rtol=VELOCITY_RTOL[fmt], atol=0)
    assert b.info == json.loads(json.dumps(a.info, default=lambda v: v.item()))


@pytest.mark.parametrize("fmt", list(SUFFIXES))
@pytest.mark.parametrize("energies", [True, False])
def test_round_trip_is_exact(tmp_path, fmt, energies):
    traj = make_trajectory(energies=energies)
    path = write_trajectory(traj, tmp_path / f"t{SUFFIXES[fmt]}")
    assert_same(traj, read_trajectory(path), fmt)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left


@pytest.mark.parametrize("energies", [True, False])
def test_extxyz_lines_are_ase_comment_lines_and_17_digit_atom_lines(tmp_path, energies):
    """The writer formats whole frames from a template: every comment line after the
    first equals ASE's key_val_dict_to_str of the frame's keys, every atom line the
    symbol, the float64 values of float32 positions and of the momenta with 17 digits,
    and the mass, across block boundaries."""
    from ase.io.extxyz import key_val_dict_to_str

    from gicnet_runtime.io.ase_formats import write_extxyz_blocks
    from gicnet_runtime.units import a_per_fs_to_ase_velocities

    traj = make_trajectory(n_frames=7, energies=energies)
    traj = dataclasses.replace(traj, positions=traj.positions.astype(np.float32),
                               velocities=traj.velocities.astype(np.float32),
                               potential_energy=None if not energies
                               else traj.potential_energy.astype(np.float32))
    blocks = [dataclasses.replace(traj, **{name: getattr(traj, name)[a:b] for name in
                                           ("time_fs", "positions", "velocities")
                                           + (("potential_energy", "kinetic_energy")
                                              if energies else ())})
              for a, b in ((0, 3), (3, 3), (3, 7))]
    path = tmp_path / "t.xyz"
    write_extxyz_blocks(path, blocks, {"engine": "x"})
    lines = path.read_text().splitlines()
    n = traj.n_atoms + 2
    assert len(lines) == 7 * n
    momenta = a_per_fs_to_ase_velocities(traj.velocities.astype(np.float64)) \
        * traj.masses[None, :, None]
    for i in range(7):
        comment = lines[i * n + 1]
        keys = {"pbc": "F F F", "time_fs": float(traj.time_fs[i])}
        if energies:
            keys.update(energy=float(traj.potential_energy[i]),
                        kinetic_energy_eV=float(traj.kinetic_energy[i]))
        if i:
            assert comment.split(" ", 1)[1] == key_val_dict_to_str(keys)
        else:
            assert "gicnet_info" in comment
        for j in range(traj.n_atoms):
            fields = lines[i * n + 2 + j].split()
            values = [float(traj.positions[i, j, k]) for k in range(3)] \
                + [float(momenta[i, j, k]) for k in range(3)] + [float(traj.masses[j])]
            assert fields == [f"{atomic_symbol(traj.atomic_numbers[j])}"] + [
                "%.17g" % v for v in values]
    back = read_trajectory(path)
    np.testing.assert_array_equal(back.positions, traj.positions.astype(np.float64))


def atomic_symbol(z: int) -> str:
    from ase.data import chemical_symbols

    return chemical_symbols[z]


@pytest.mark.parametrize("fmt", ["extxyz", "traj"])
def test_ase_reads_our_velocities_in_its_units(tmp_path, fmt):
    traj = make_trajectory()
    path = write_trajectory(traj, tmp_path / f"t{SUFFIXES[fmt]}")
    frames = ase_read(path, index=":")
    v_ase = np.stack([atoms.get_velocities() for atoms in frames])
    # ase.units.fs is one fs in ASE's time unit, so Å/fs = (Å per ASE time) * units.fs.
    np.testing.assert_allclose(v_ase * units.fs, traj.velocities, rtol=1e-14)
    np.testing.assert_array_equal([a.get_potential_energy() for a in frames],
                                  traj.potential_energy)
    np.testing.assert_array_equal(frames[0].get_masses(), traj.masses)


def test_ase_written_extxyz_velocities_read_back_in_a_per_fs(tmp_path):
    atoms = molecule("CH3CH2OH")
    v_a_per_fs = np.random.default_rng(1).normal(scale=0.01, size=(len(atoms), 3))
    frames = []
    for i in range(3):
        frame = atoms.copy()
        frame.set_velocities(v_a_per_fs * (i + 1) / units.fs)
        frame.calc = SinglePointCalculator(frame, energy=-1.5 * i)
        frames.append(frame)
    path = tmp_path / "ase.extxyz"
    ase_write(path, frames, format="extxyz")
    traj = read_trajectory(path, frame_spacing_fs=2.0)
    # ASE writes momenta (amu·Å/ASE time) with 8 decimals: |Δp| <= 5e-9.
    atol = 5e-9 / atoms.get_masses().min() * units.fs
    for i in range(3):
        np.testing.assert_allclose(traj.velocities[i], v_a_per_fs * (i + 1), rtol=0, atol=atol)
    np.testing.assert_array_equal(traj.time_fs, [0.0, 2.0, 4.0])
    np.testing.assert_array_equal(traj.potential_energy, [0.0, -1.5, -3.0])
    assert traj.kinetic_energy is None
    np.testing.assert_array_equal(traj.atomic_numbers, atoms.numbers)


def test_ase_traj_time_from_frame_info(tmp_path):
    path = tmp_path / "md.traj"
    with AseTrajectory(str(path), "w") as writer:
        for i in range(4):
            atoms = molecule("H2O")
            atoms.set_velocities(np.full((3, 3), 0.1 * i))
            atoms.info["time_fs"] = 10.0 + 0.25 * i
            writer.write(atoms)
    traj = read_trajectory(path)
    np.testing.assert_array_equal(traj.time_fs, [10.0, 10.25, 10.5, 10.75])
    np.testing.assert_allclose(traj.velocities[2], 0.2 * units.fs, rtol=1e-15)


def test_missing_time_needs_frame_spacing(tmp_path):
    atoms = molecule("H2O")
    atoms.set_velocities(np.zeros((3, 3)))
    ase_write(tmp_path / "a.xyz", [atoms, atoms], format="extxyz")
    with pytest.raises(InputError, match="frame_spacing_fs"):
        read_trajectory(tmp_path / "a.xyz")


def test_h5md_layout(tmp_path):
    traj = make_trajectory()
    path = write_trajectory(traj, tmp_path / "t.h5md")
    with h5py.File(path, "r") as f:
        assert list(f["h5md"].attrs["version"]) == [1, 1]
        assert f["h5md/creator"].attrs["name"] == "gicnet"
        assert "name" in f["h5md/author"].attrs
        group = f["particles/molecule"]
        assert group["position/value"].attrs["unit"] == "angstrom"
        assert group["velocity/value"].attrs["unit"] == "angstrom fs-1"
        assert group["position/time"].attrs["unit"] == "fs"
        assert group["mass"].attrs["unit"] == "u"
        assert f["observables/kinetic_energy/value"].attrs["unit"] == "eV"
        np.testing.assert_array_equal(f["observables/potential_energy/time"], traj.time_fs)
        np.testing.assert_array_equal(group["species"], traj.atomic_numbers)
        assert json.loads(f["parameters/gicnet"].attrs["info_json"])["seed"] == 7


def test_h5md_foreign_units_and_fixed_interval(tmp_path):
    """An H5MD file in nm, ps, nm/ps, kJ/mol with a scalar (fixed-interval) time."""
    path = tmp_path / "foreign.h5"
    pos_nm = np.random.default_rng(2).random((3, 2, 3))
    with h5py.File(path, "w") as f:
        f.create_group("h5md").attrs["version"] = [1, 1]
        g = f.create_group("particles/all")
        for name, unit in (("position", "nm"), ("velocity", "nm ps-1")):
            g.create_dataset(f"{name}/value", data=pos_nm).attrs["unit"] = unit
            g.create_dataset(f"{name}/step", data=10)
            g.create_dataset(f"{name}/time", data=0.002).attrs["unit"] = "ps"
        g.create_dataset("species", data=[1, 1])
        e = f.create_dataset("observables/potential_energy/value", data=[0.0, 96.485, 1.0])
        e.attrs["unit"] = "kJ mol-1"
    traj = read_trajectory(path)
    np.testing.assert_allclose(traj.positions, pos_nm * 10.0, rtol=1e-15)
    np.testing.assert_allclose(traj.velocities, pos_nm * 10.0 / 1000.0, rtol=1e-15)
    np.testing.assert_allclose(traj.time_fs, [0.0, 2.0, 4.0], rtol=1e-15)
    np.testing.assert_array_equal(traj.masses, [atomic_masses[1]] * 2)  # no mass: standard
    # 96.485 kJ/mol is 1.0000 eV (Faraday constant 96485.33 C/mol).
    np.testing.assert_allclose(traj.potential_energy[1], 1.0, rtol=1e-5)


def test_npz_layout_and_hartree(tmp_path):
    traj = make_trajectory()
    path = write_trajectory(traj, tmp_path / "t.npz")
    with np.load(path) as data:
        assert {"xyz", "v", "t", "ep", "ek", "m"} <= set(data.files)
        np.testing.assert_array_equal(data["xyz"], traj.positions)
        np.testing.assert_array_equal(data["v"], traj.velocities)
        np.testing.assert_allclose(data["ep"] * units.Hartree, traj.potential_energy,
                                   rtol=1e-15)
    as_ev = read_trajectory(path, npz_energy_unit="eV")
    np.testing.assert_allclose(as_ev.kinetic_energy * units.Hartree, traj.kinetic_energy,
                               rtol=1e-15)


def test_npz_elements_from_masses(tmp_path):
    """MLatom's own files carry no z: elements come from the masses."""
    atoms = molecule("CH3CH2OH")
    n = len(atoms)
    np.savez(tmp_path / "m.npz", xyz=np.zeros((2, n, 3)), v=np.zeros((2, n, 3)),
             t=[0.0, 0.5], ep=[0.0, 0.0], ek=[0.0, 0.0], m=atoms.get_masses() + 0.001)
    traj = read_trajectory(tmp_path / "m.npz")
    np.testing.assert_array_equal(traj.atomic_numbers, atoms.numbers)
    np.savez(tmp_path / "d.npz", xyz=np.zeros((1, 1, 3)), v=np.zeros((1, 1, 3)), t=[0.0],
             m=[2.014])  # deuterium: no element has this standard mass
    with pytest.raises(InputError, match="'z'"):
        read_trajectory(tmp_path / "d.npz")


def test_read_trajectories_keeps_order(tmp_path):
    paths = []
    for n in (3, 5):
        paths.append(write_trajectory(make_trajectory(n_frames=n), tmp_path / f"{n}.h5"))
    assert [t.n_frames for t in read_trajectories(paths[::-1])] == [5, 3]
    with pytest.raises(InputError):
        read_trajectories([])


def test_failed_write_leaves_target_untouched(tmp_path):
    target = tmp_path / "t.h5"
    write_trajectory(make_trajectory(n_frames=2), target)
    before = target.read_bytes()
    bad = make_trajectory(info={"unserialisable": object()})
    for name in ("t.h5", "new.xyz", "new.npz"):
        with pytest.raises(InputError):
            write_trajectory(bad, tmp_path / name)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.h5"]


def _bad_files(tmp_path):
    good = make_trajectory()
    for suffix in SUFFIXES.values():
        data = write_trajectory(good, tmp_path / f"good{suffix}").read_bytes()
        (tmp_path / f"truncated{suffix}").write_bytes(data[: len(data) // 2])
        (tmp_path / f"garbage{suffix}").write_bytes(b"\x00\x01not a trajectory\n" * 5)
        (tmp_path / f"empty{suffix}").write_bytes(b"")
    atoms = molecule("H2O")
    atoms.info["time_fs"] = 0.0
    ase_write(tmp_path / "novel.xyz", [atoms], format="extxyz")
    n = 3
    np.savez(tmp_path / "novel.npz", xyz=np.zeros((1, n, 3)), t=[0.0], m=[1.0, 1.0, 16.0])
    np.savez(tmp_path / "nan.npz", xyz=np.full((1, n, 3), np.nan), v=np.zeros((1, n, 3)),
             t=[0.0], m=[1.008, 1.008, 15.999])
    np.savez(tmp_path / "nanenergy.npz", xyz=np.zeros((1, n, 3)), v=np.zeros((1, n, 3)),
             t=[0.0], m=[1.008, 1.008, 15.999], ep=[np.nan])
    with h5py.File(tmp_path / "novel.h5", "w") as f:
        f.create_group("h5md")
        f.create_dataset("particles/molecule/position/value", data=np.zeros((1, 2, 3)))
    return sorted(p for p in tmp_path.iterdir() if not p.name.startswith("good"))


def test_bad_files_raise_one_line_input_error(tmp_path):
    bad = _bad_files(tmp_path)
    assert len(bad) == 17
    for path in bad:
        with pytest.raises(InputError) as err:
            read_trajectory(path)
        assert "\n" not in str(err.value), path.name
    for path in bad:
        if path.name.startswith("novel"):
            with pytest.raises(InputError, match="velocit"):
                read_trajectory(path)


def test_path_and_format_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_trajectory(tmp_path / "missing.h5")
    with pytest.raises(InputError, match="suffix"):
        read_trajectory(tmp_path / "t.dcd")
    with pytest.raises(InputError, match="format"):
        write_trajectory(make_trajectory(), tmp_path / "t.h5", fmt="pdb")
    with pytest.raises(InputError, match="folder"):
        write_trajectory(make_trajectory(), tmp_path / "no" / "t.h5")


def test_velocities_change_shape_between_frames_is_rejected(tmp_path):
    frames = [Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]), Atoms("H", positions=[[0] * 3])]
    for atoms in frames:
        atoms.set_velocities(np.zeros((len(atoms), 3)))
        atoms.info["time_fs"] = float(len(atoms))
    ase_write(tmp_path / "mixed.xyz", frames, format="extxyz")
    with pytest.raises(InputError, match="different atoms"):
        read_trajectory(tmp_path / "mixed.xyz")
