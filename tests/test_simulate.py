"""Reference MD: thermostat temperature, NVE energy conservation, reproducibility, CLI."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from click.testing import CliRunner

from gicnet_runtime.errors import InputError
from gicnet_runtime.io.formats import read_trajectory
from gicnet_runtime.reference.engines import make_calculator
from gicnet_runtime.reference.simulate import (
    SimulationSettings,
    equilibrate,
    kinetic_temperature_K,
    load_molecule,
    nve_degrees_of_freedom,
    run_nve,
    run_trajectories,
    simulate_to_files,
)

TARGET_K = 300.0
#: Canonical relative fluctuation of the kinetic temperature over n_dof: sqrt(2 / n_dof).
ETHANOL_DOF = 27


def started_ethanol(seed: int, temperature_K: float = TARGET_K):
    atoms = load_molecule("CH3CH2OH")
    atoms.calc = make_calculator("gfn2")
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)
    return atoms, rng


def block_mean_and_error(series: np.ndarray, n_blocks: int) -> tuple[float, float]:
    blocks = series[: len(series) // n_blocks * n_blocks].reshape(n_blocks, -1).mean(axis=1)
    return float(series.mean()), float(blocks.std(ddof=1) / np.sqrt(n_blocks))


def test_langevin_reaches_target_temperature_within_statistical_error():
    """GFN2 ethanol, the recipe's friction: mean and spread of T are canonical.

    ASE's default fixcm=True averaged ~450 K here.  With friction 0.01/fs the kinetic
    temperature decorrelates in ~1/(2 friction) = 50 fs, so 250 fs blocks are independent.
    """
    atoms, rng = started_ethanol(seed=21)
    settings = SimulationSettings("CH3CH2OH", equilibration_fs=3000.0, friction_per_fs=0.01)
    kinetic = equilibrate(atoms, settings, rng)
    burn_in = round(500.0 / settings.dt_fs)
    temperature = kinetic_temperature_K(kinetic[burn_in:], ETHANOL_DOF)
    mean, error = block_mean_and_error(temperature, n_blocks=10)
    assert error < 25.0  # the test can resolve a 150 K overheating many times over
    assert abs(mean - TARGET_K) < 3 * error
    expected_spread = TARGET_K * np.sqrt(2 / ETHANOL_DOF)  # 81.6 K
    assert temperature.std() == pytest.approx(expected_spread, rel=0.2)


def nve_total_energy(dt_fs: float, duration_fs: float = 600.0):
    atoms, _ = started_ethanol(seed=5)
    settings = SimulationSettings("CH3CH2OH", dt_fs=dt_fs, duration_fs=duration_fs)
    traj = run_nve(atoms, settings, {})
    return traj.time_fs, traj.total_energy()


def test_nve_energy_conservation_at_half_fs_is_second_order():
    """Velocity Verlet at 0.5 fs: no drift, and fluctuations integrator-limited (~dt²).

    With tblite's default SCC accuracy the drift was ~1 meV/ps; at accuracy 0.1 it is
    ~0.02 meV/ps.  The total-energy fluctuation shrinks 4x when dt halves.
    """
    time_half, energy_half = nve_total_energy(0.5)
    _, energy_quarter = nve_total_energy(0.25)
    drift_eV_per_ps = np.polyfit(time_half / 1000.0, energy_half, 1)[0]
    assert abs(drift_eV_per_ps) < 2e-4
    assert energy_half.std() < 1e-3  # eV; kinetic energy itself fluctuates by ~30 meV
    assert energy_half.std() / energy_quarter.std() == pytest.approx(4.0, rel=0.25)


@pytest.fixture(scope="module")
def short_runs():
    """Seeds 3, 3, 4 in two worker processes (100 fs + 100 fs of GFN2 each)."""
    settings = SimulationSettings("CH3CH2OH", duration_fs=100.0, equilibration_fs=100.0)
    return settings, run_trajectories(settings, [3, 3, 4], workers=2, progress=False)


def test_seeded_runs_are_reproducible_and_independent(short_runs):
    _, (a, b, c) = short_runs
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.velocities, b.velocities)
    assert not np.allclose(a.positions[-1], c.positions[-1])


def test_trajectory_frames_units_and_provenance(short_runs):
    settings, (traj, _, _) = short_runs
    assert traj.n_frames == 201
    np.testing.assert_allclose(np.diff(traj.time_fs), 0.5)
    assert traj.time_fs[0] == 0.0
    ke_eV = 0.5 * np.einsum("i,tij->t", traj.masses, traj.velocities**2) * units._amu * 1e10 \
        / units._e  # amu·(Å/fs)² -> J -> eV: 1e-20 m² / 1e-30 s² = 1e10
    np.testing.assert_allclose(traj.kinetic_energy, ke_eV, rtol=1e-6)
    info = traj.info
    assert info["engine"] == "gfn2" and info["seed"] == 3
    assert info["engine_version"].startswith("GFN2-xTB (tblite ")
    assert info["dt_fs"] == 0.5 and info["temperature_K"] == 300.0
    assert info["nve_degrees_of_freedom"] == 21
    assert info["nve_temperature_K"] == pytest.approx(
        np.mean(2 * traj.kinetic_energy / (21 * units.kB)), rel=1e-6)


def test_momentum_and_angular_momentum_removed(short_runs):
    _, (traj, _, _) = short_runs
    m = traj.masses[None, :, None]
    momentum = (m * traj.velocities).sum(axis=1)
    assert np.abs(momentum).max() < 1e-12
    com = (m * traj.positions).sum(axis=1, keepdims=True) / traj.masses.sum()
    angular = (m * np.cross(traj.positions - com, traj.velocities)).sum(axis=1)
    # thermal |L| of ethanol at 300 K is ~0.1 amu·Å²/fs
    assert np.abs(angular[0]).max() < 1e-12
    assert np.abs(angular).max() < 1e-5


def test_kinetic_temperature_matches_ase():
    atoms, _ = started_ethanol(seed=1)
    t = kinetic_temperature_K(atoms.get_kinetic_energy(), 3 * len(atoms))
    assert t == pytest.approx(atoms.get_temperature(), rel=1e-6)
    assert nve_degrees_of_freedom(9, linear=False, zero_angular_momentum=True) == 21
    assert nve_degrees_of_freedom(3, linear=True, zero_angular_momentum=True) == 4
    assert nve_degrees_of_freedom(9, linear=False, zero_angular_momentum=False) == 24


def test_files_written_once_and_kept(tmp_path):
    settings = SimulationSettings("H2O", duration_fs=10.0, equilibration_fs=5.0)
    paths = simulate_to_files(settings, [0], tmp_path, workers=1, progress=False)
    assert [p.name for p in paths] == ["H2O_seed0.h5"]
    stamp = paths[0].stat().st_mtime_ns
    assert simulate_to_files(settings, [0], tmp_path, progress=False) == paths
    assert paths[0].stat().st_mtime_ns == stamp
    assert read_trajectory(paths[0]).n_frames == 21


@pytest.mark.parametrize("kwargs, message", [
    ({"duration_fs": 10.2}, "multiple"),
    ({"temperature_K": -1.0}, "temperature_K"),
    ({"save_every": 0}, "save_every"),
    ({"equilibration_fs": 0.3}, "multiple"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(InputError, match=message):
        SimulationSettings("H2O", **kwargs)


def test_bad_molecule_engine_and_workers_fail_before_any_work(tmp_path):
    with pytest.raises(InputError, match="neither a file"):
        run_trajectories(SimulationSettings("NotAMolecule"), [0])
    with pytest.raises(InputError, match="ANI-1x"):
        run_trajectories(SimulationSettings("CH3SH", engine="ani1x"), [0])
    with pytest.raises(InputError, match="unknown engine"):
        run_trajectories(SimulationSettings("H2O", engine="dftb"), [0])
    with pytest.raises(InputError, match="workers"):
        run_trajectories(SimulationSettings("H2O", duration_fs=1.0), [0], workers=0)
    assert list(tmp_path.iterdir()) == []


def test_molecule_from_file(tmp_path):
    from ase.io import write

    write(tmp_path / "water.xyz", load_molecule("H2O"))
    assert load_molecule(str(tmp_path / "water.xyz")).get_chemical_formula() == "H2O"
    (tmp_path / "bad.xyz").write_text("not a structure\n")
    with pytest.raises(InputError, match="cannot read"):
        load_molecule(str(tmp_path / "bad.xyz"))


def test_cli_simulate(tmp_path):
    from cli import main

    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "simulate", "H2O", "--duration-fs", "5", "--equilibration-fs", "5",
        "--n-trajectories", "2", "--seed", "7", "--workers", "1", "--out", str(out),
        "--format", "extxyz"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["H2O_seed7.xyz", "H2O_seed8.xyz"]
    assert read_trajectory(out / "H2O_seed8.xyz").info["seed"] == 8
    bad = CliRunner().invoke(main, ["simulate", "NotAMolecule", "--out", str(out)])
    assert bad.exit_code == 1
    assert bad.output.strip().count("\n") == 0 and "neither a file" in bad.output
