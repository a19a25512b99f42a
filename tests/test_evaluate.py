"""gicnet evaluate: segment errors, stability and energy conservation against analytic
references (free flight through the analytic ONNX fixtures) and GFN2-xTB itself."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from gicnet_runtime.analysis import evaluate as ev
from gicnet_runtime.analysis.report import engine_potential
from gicnet_runtime.core.icdef import ICDefinition
from gicnet_runtime.core.model import load_model
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.io.formats import write_trajectory
from gicnet_runtime.units import EV_IN_KCAL_PER_MOL
from tests.onnx_fixtures import (
    ETHANOL_IC_ROWS,
    ETHANOL_MASSES_AMU,
    ETHANOL_POSITIONS_A,
    ETHANOL_Z,
    thermal_velocities,
    write_model,
)

ACCEL_A_PER_FS2 = np.array([3e-4, -2e-4, 1e-4])
DT_FS = 0.5


def _free_flight(velocities, duration_fs, accel=np.zeros(3)):
    """Exact reference: x0 + v0 t + a t^2 / 2 from the fixture geometry."""
    t = np.arange(0.0, duration_fs + DT_FS / 2, DT_FS)
    pos = (ETHANOL_POSITIONS_A + velocities * t[:, None, None]
           + 0.5 * accel * t[:, None, None] ** 2)
    vel = velocities + accel * t[:, None, None]
    return Trajectory(time_fs=t, positions=pos, velocities=vel, atomic_numbers=ETHANOL_Z,
                      masses=ETHANOL_MASSES_AMU)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate")
    return {"free": load_model(write_model(folder / "free.onnx"), device="cpu"),
            "accel": load_model(write_model(folder / "accel.onnx",
                                            accel_A_per_fs2=ACCEL_A_PER_FS2), device="cpu"),
            "folder": folder}


@pytest.fixture(scope="module")
def references():
    return [_free_flight(v, 40.0) for v in thermal_velocities(1, count=3)]


def test_segment_errors_vanish_for_an_exact_model(models, references):
    out = ev.segment_errors(models["free"], references, starts_per_reference=5)
    assert out["n_starts"] == 15
    np.testing.assert_allclose(out["times_fs"], np.arange(21) * DT_FS)
    for key in ("bond_rmse_A", "angle_rmse_deg", "dihedral_rmse_deg", "cartesian_rmsd_A"):
        assert len(out[key]) == 21 and max(out[key]) < 2e-4, key


def test_segment_errors_of_a_uniform_acceleration(models, references):
    # A uniform spurious acceleration moves every atom by a t^2 / 2: the lab-frame RMSD is
    # exactly |a| t^2 / 2 and no internal coordinate changes.
    out = ev.segment_errors(models["accel"], references, starts_per_reference=4)
    t = np.asarray(out["times_fs"])
    np.testing.assert_allclose(out["cartesian_rmsd_A"], 0.5 * np.linalg.norm(ACCEL_A_PER_FS2)
                               * t ** 2, rtol=1e-4, atol=2e-6)
    assert max(out["bond_rmse_A"]) < 2e-5 and max(out["dihedral_rmse_deg"]) < 2e-3


def test_bond_attenuation_recovers_a_known_shrinkage():
    """An O-H "molecule" whose predicted stretch keeps 0.9 of the reference's displacement and
    0.8 of its stretch rate, with motion across the bond that must not count."""
    rng = np.random.default_rng(3)
    b, eq = 64, 0.97
    u = rng.normal(size=(b, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    across = np.cross(u, rng.normal(size=(b, 3)))
    r, rate = eq + rng.uniform(-0.08, 0.08, b), rng.normal(0, 0.02, b)
    v0 = rng.normal(0, 0.01, (b, 3))

    def frames(length, stretch_rate):
        pos = np.stack([np.zeros((b, 3)), length[:, None] * u], axis=1)
        vel = np.stack([v0, v0 + stretch_rate[:, None] * u + across], axis=1)
        return pos, vel

    got = ev.bond_attenuation(*frames(eq + 0.9 * (r - eq), 0.8 * rate), *frames(r, rate),
                              np.array([[0, 1]]), np.array([eq]), [8, 1])
    assert set(got) == {"O-H"} and got["O-H"]["bonds"] == 1
    assert got["O-H"]["displacement"] == pytest.approx(0.9, rel=1e-12)
    assert got["O-H"]["rate"] == pytest.approx(0.8, rel=1e-12)
    assert got["O-H"]["displacement_rms"] == pytest.approx(0.9, rel=1e-12)
    assert got["O-H"]["rate_rms"] == pytest.approx(0.8, rel=1e-12)


def test_bond_attenuation_tells_a_phase_error_from_a_shrinkage():
    """Harmonic O-H stretches predicted a quarter period late: the slope of displacement on
    the reference's is 0 (uncorrelated), while the RMS ratios keep the full amplitude."""
    b, eq, omega = 400, 0.97, 0.7
    phase = np.linspace(0.0, 2.0 * np.pi, b, endpoint=False)
    u = np.tile([0.0, 0.0, 1.0], (b, 1))

    def frames(shift):
        length = eq + 0.05 * np.sin(phase + shift)
        rate = 0.05 * omega * np.cos(phase + shift)
        return (np.stack([np.zeros((b, 3)), length[:, None] * u], axis=1),
                np.stack([np.zeros((b, 3)), rate[:, None] * u], axis=1))

    got = ev.bond_attenuation(*frames(np.pi / 2), *frames(0.0), np.array([[0, 1]]),
                              np.array([eq]), [8, 1])["O-H"]
    assert got["displacement"] == pytest.approx(0.0, abs=1e-12)
    assert got["rate"] == pytest.approx(0.0, abs=1e-12)
    assert got["displacement_rms"] == pytest.approx(1.0, rel=1e-12)
    assert got["rate_rms"] == pytest.approx(1.0, rel=1e-12)


def test_segment_end_attenuation_is_one_for_an_exact_model(models, references):
    got = ev.segment_end_attenuation(models["free"], references, starts_per_reference=5)
    assert set(got) == {"C-C", "C-H", "C-O", "O-H"}
    assert sum(v["bonds"] for v in got.values()) == 8
    for kind in got.values():
        assert kind["displacement"] == pytest.approx(1.0, abs=1e-3)
        assert kind["rate"] == pytest.approx(1.0, abs=1e-3)


def test_stability_finds_the_first_broken_bond_of_free_flight(models):
    velocities = thermal_velocities(7, count=2, scale_A_per_fs=0.01)
    starts = [_free_flight(v, 1.0) for v in velocities]
    bonds = ev.coordinate_sets(ICDefinition(ETHANOL_IC_ROWS))["bond"]
    equilibrium = ev.equilibrium_bonds_A(starts, bonds)
    duration = 300.0
    # As warnings, the runtime's physical-sanity checks let free flight break its bonds.
    trajectories = models["free"].propagate(np.broadcast_to(ETHANOL_POSITIONS_A, velocities.shape),
                                            velocities,
                                            duration, 1.0, unphysical="warn")
    rows = ev.stability(trajectories, bonds, equilibrium, duration)
    t = np.arange(0.0, duration + 0.5, 1.0)
    for row, v in zip(rows, velocities):
        d = (ETHANOL_POSITIONS_A[bonds[:, 0]] - ETHANOL_POSITIONS_A[bonds[:, 1]]
             + (v[bonds[:, 0]] - v[bonds[:, 1]]) * t[:, None, None])
        ratio = np.linalg.norm(d, axis=-1) / equilibrium
        broken = np.any((ratio < ev.BOND_RANGE[0]) | (ratio > ev.BOND_RANGE[1]), axis=1)
        assert broken.any() and not row["stable"]
        if row["failure"] is None:  # the runtime stops a flying-apart molecule later
            assert row["first_unstable_fs"] == t[np.argmax(broken)]
            assert row["max_bond_ratio"] == pytest.approx(ratio.max(), rel=1e-4)
    short = models["free"].propagate(ETHANOL_POSITIONS_A, velocities[0], 10.0, 1.0)
    assert ev.stability(short, bonds, equilibrium, 10.0)[0]["stable"]


def test_energy_drift_of_a_known_line():
    t = np.linspace(0.0, 5000.0, 101)
    slope_kcal_per_ps = 0.3
    energy = -10.0 + slope_kcal_per_ps / EV_IN_KCAL_PER_MOL * t / 1000.0
    out = ev.energy_drift(t, energy)
    assert out["drift_kcal_mol_per_ps"] == pytest.approx(slope_kcal_per_ps)
    assert out["rms_deviation_kcal_mol"] == pytest.approx(
        slope_kcal_per_ps * np.sqrt(np.mean((t / 1000.0) ** 2)))


def test_gfn2_energy_of_a_gfn2_trajectory_matches_its_own_record(short_md):
    traj = short_md[0]
    every = 100
    potential = engine_potential("gfn2", traj.atomic_numbers)
    (result,), ((times, total),) = ev.energy_conservation([traj], potential, every)
    np.testing.assert_allclose(total, traj.total_energy()[::every], atol=1e-6)
    recorded = ev.energy_drift(traj.time_fs[::every], traj.total_energy()[::every])
    assert result["drift_kcal_mol_per_ps"] == pytest.approx(
        recorded["drift_kcal_mol_per_ps"], abs=1e-4)
    assert result["rms_deviation_kcal_mol"] < 0.1  # velocity Verlet at 0.5 fs conserves it


def test_cli_evaluate_writes_report_and_plots(models, references, tmp_path):
    ref_paths = []
    for k, ref in enumerate(references):
        ref_paths.append(tmp_path / f"ref{k}.h5")
        write_trajectory(ref, ref_paths[-1])
    out = tmp_path / "eval"
    result = CliRunner().invoke(cli.main, [
        "evaluate", "--model", str(models["folder"] / "accel.onnx"), "--reference",
        str(tmp_path / "ref*.h5"), "--out", str(out), "--starts-per-reference", "3",
        "--long-starts", "4", "--long-duration-fs", "20", "--device", "cpu",
        "--unphysical", "warn"])  # the references' free flight breaks bonds by 40 fs
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["n_references"] == 3 and report["segment_errors"]["n_starts"] == 9
    assert report["segment_errors"]["cartesian_rmsd_A"][-1] == pytest.approx(
        0.5 * np.linalg.norm(ACCEL_A_PER_FS2) * 100.0, rel=1e-4)
    assert report["segment_end_attenuation"]["O-H"]["displacement"] == pytest.approx(1.0,
                                                                                     abs=1e-3)
    assert report["stability"]["count"] == 4
    assert all(r["reached_fs"] == 20.0 for r in report["stability"]["trajectories"])
    # the analytic model has an energy output and no restoration settings: all at the end
    assert report["unrolling"] == {"segment_fs": 10.0, "restore_energy": True,
                                   "reversal_share": 0.0, "restore_fraction": 1.0,
                                   "restore_deficit": "end"}
    for name in ("segment_errors.png", "spectrum.png"):
        assert (out / name).stat().st_size > 1000
    assert not list(out.glob(".*tmp"))
    bad = CliRunner().invoke(cli.main, ["evaluate", "--reference", str(tmp_path / "none*.h5"),
                                        "--out", str(out)])
    assert bad.exit_code == 1 and "no trajectory files" in bad.output


def test_analysis_commands_never_import_torch(models, references, tmp_path):
    # In a fresh interpreter (this one has torch): spectrum, evaluate and explain.
    import subprocess
    import sys
    from pathlib import Path

    ref = tmp_path / "ref.h5"
    write_trajectory(references[0], ref)
    init = tmp_path / "init.extxyz"
    write_trajectory(Trajectory(time_fs=[0.0], positions=references[0].positions[:1],
                                velocities=references[0].velocities[:1],
                                atomic_numbers=ETHANOL_Z, masses=ETHANOL_MASSES_AMU), init)
    model = str(models["folder"] / "free.onnx")
    commands = [["spectrum", str(ref), "--out", str(tmp_path / "s.png")],
                ["evaluate", "--model", model, "--reference", str(ref), "--out",
                 str(tmp_path / "ev"), "--long-starts", "1", "--long-duration-fs", "10"],
                ["explain", "--model", model, "--init", str(init), "--coordinate", "bond 1 2",
                 "--time-fs", "5", "--steps", "2"]]
    code = ("import sys\nfrom click.testing import CliRunner\nimport cli\n"
            f"for args in {commands!r}:\n"
            "    r = CliRunner().invoke(cli.main, args)\n"
            "    assert r.exit_code == 0, r.output\n"
            "bad = [m for m in ('torch', 'onnx', 'gicnet_train') if m in sys.modules]\n"
            "assert not bad, bad\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(cli.__file__).parent,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def _recipe(name: str):
    """The module recipes/NAME.py (recipes are scripts, not a package)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).resolve().parents[1] / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_attenuation_undo_scales_only_the_bond_displacements():
    """The diagnostic recipe's end-state surgery: gain 1 leaves the state as it was; gain 2
    doubles every real-atom bond's displacement from its mean length and keeps the centre
    of mass and its velocity."""
    import dataclasses

    recipe = _recipe("attenuation_undo")

    @dataclasses.dataclass(frozen=True)
    class Prediction:
        end_positions: np.ndarray
        end_velocities: np.ndarray

    masses = np.asarray(ETHANOL_MASSES_AMU)
    icdef = ICDefinition(ETHANOL_IC_ROWS)
    velocities = thermal_velocities(5, count=3)
    pos = np.broadcast_to(ETHANOL_POSITIONS_A, velocities.shape) + 0.03 * velocities
    before = Prediction(pos[None], velocities[None])
    bonds = ev.coordinate_sets(icdef)["bond"]
    lengths = ev.coordinate_values(pos, {"bond": bonds})["bond"]
    equilibrium = lengths.mean(axis=0) - 0.01
    same = recipe.undo_attenuation(before, masses, icdef, equilibrium, np.ones(len(bonds)))
    np.testing.assert_allclose(same.end_positions, before.end_positions, atol=1e-12)
    np.testing.assert_allclose(same.end_velocities, before.end_velocities, atol=1e-8)
    doubled = recipe.undo_attenuation(before, masses, icdef, equilibrium,
                                      np.full(len(bonds), 2.0))
    got = ev.coordinate_values(doubled.end_positions[0], {"bond": bonds})["bond"]
    np.testing.assert_allclose(got - equilibrium, 2.0 * (lengths - equilibrium), atol=1e-12)

    def com(x):
        return np.einsum("n,bnk->bk", masses, x) / masses.sum()

    np.testing.assert_allclose(com(doubled.end_positions[0]), com(pos), atol=1e-12)
    np.testing.assert_allclose(com(doubled.end_velocities[0]), com(velocities), atol=1e-12)


def test_the_unrolling_choice_picks_the_best_overlap_among_stable_variants_within_the_bound():
    """recipes/ethanol_unroll.py's rule: a variant unstable on one trajectory or over 0.3
    kcal/mol is passed over however good its spectrum; among the rest the best overlap wins,
    the first listed on a tie; no qualifying variant gives None."""
    recipe = _recipe("ethanol_unroll")

    def row(name, stable, energy, overlap):
        return {"restoration": name, "stable": stable, "energy_rms_kcal_mol": energy,
                "overlap": overlap}

    rows = [row("off", "30/30", 2.57, 0.99), row("unstable", "29/30", 0.2, 0.98),
            row("a", "30/30", 0.23, 0.934), row("b", "30/30", 0.30, 0.946),
            row("c", "30/30", 0.29, 0.946), row("no spectrum", "30/30", 0.1, None)]
    assert recipe.pick(rows)["restoration"] == "b"
    assert recipe.pick(rows[:3])["restoration"] == "a"
    assert recipe.pick(rows[:2]) is None


def test_the_oh_period_diagnostic_recovers_a_known_stretch_frequency_and_conformer():
    """recipes/oh_conformers.py on a synthetic H-O-C-C fragment: an O-H bond vibrating at
    3600 cm-1 with the H-O-C-C dihedral held at 65 deg comes out as 3600 cm-1 (every period,
    spread ~0) and gauche; the dihedral it tags periods with agrees with ASE's."""
    from ase import Atoms

    recipe = _recipe("oh_conformers")

    wavenumber, dt, phi = 3600.0, 0.5, np.radians(65.0)
    t = np.arange(0.0, 2000.0 + dt / 2, dt)
    r = 0.97 + 0.02 * np.sin(2 * np.pi * wavenumber * 2.99792458e-5 * t)  # c in cm/fs
    c2 = np.array([-1.5, 0.0, 0.0])      # C bonded to C1
    c1 = np.zeros(3)                      # C bonded to O
    o = np.array([0.5, 1.3, 0.0])
    axis = (o - c1) / np.linalg.norm(o - c1)
    # H off O, 110 deg from the O-C bond, rotated by phi about it from the C-C side
    ref = c2 - c1 - np.dot(c2 - c1, axis) * axis
    ref /= np.linalg.norm(ref)
    side = np.cross(axis, ref)
    direction = np.cos(np.radians(70.0)) * axis + np.sin(np.radians(70.0)) * (
        np.cos(phi) * ref + np.sin(phi) * side)
    positions = np.empty((t.size, 4, 3))
    positions[:] = [o, c1, c2, o]
    positions[:, 3] = o + r[:, None] * direction     # H, O, C1, C2 = atoms 3, 0, 1, 2
    freq, dihedral = recipe.periods(t, positions, (3, 0, 1, 2))
    assert freq.size >= 200            # 2 ps of 9.26 fs periods, less the mean window's ends
    np.testing.assert_allclose(freq, wavenumber, rtol=5e-4)  # crossings interpolated
    ase_phi = Atoms("OCCH", positions=positions[0]).get_dihedral(3, 0, 1, 2)
    np.testing.assert_allclose(dihedral, min(ase_phi, 360.0 - ase_phi), atol=1e-9)
    np.testing.assert_allclose(dihedral, 65.0, atol=1e-9)
    summary = recipe.summary([(t, positions, (3, 0, 1, 2))])
    assert summary["gauche"]["periods"] == freq.size and summary["anti"]["periods"] == 0
    assert summary["anti"]["mean_cm"] is None and summary["anti_minus_gauche_cm"] is None
