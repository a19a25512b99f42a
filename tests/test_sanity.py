"""Physical sanity (gicnet_runtime/core/sanity.py): the checks on hand-made frames, in the
unrolling (a member that breaks one fails its segment), in predict, in evaluate's
"stable", and through the CLI's --unphysical; and the shipped model passes them."""

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from gicnet_runtime.analysis import evaluate as ev
from gicnet_runtime.core import internal, sanity
from gicnet_runtime.core.icdef import ICDefinition
from gicnet_runtime.core.model import load_model
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError, ModelError
from gicnet_runtime.io.formats import read_trajectory, write_trajectory
from gicnet_runtime.io.initial import read_initial_conditions
from gicnet_runtime.unroll import momentum as mom
from tests.onnx_fixtures import (
    ETHANOL_MASSES_AMU,
    ETHANOL_POSITIONS_A,
    ETHANOL_Z,
    thermal_velocities,
    write_model,
)

SHIPPED = Path(__file__).resolve().parent.parent / "exported" / "ethanol"
MASSES = np.asarray(ETHANOL_MASSES_AMU)
#: Pure translation: free flight keeps every bond (and the internal temperature, 0 K).
TRANSLATION_A_PER_FS = np.tile([0.01, 0.002, 0.0], (9, 1))
THERMAL = read_initial_conditions(SHIPPED / "initial.extxyz")


def _frames(n: int, b: int = 0):
    """n copies of thermal initial condition b of the shipped ethanol: positions,
    velocities (1, n, 9, 3), its bounds and times 0, 1, ... fs (1, n)."""
    pos = np.repeat(THERMAL.positions[b][None, None], n, axis=1).copy()
    vel = np.repeat(THERMAL.velocities[b][None, None], n, axis=1).copy()
    bounds = sanity.Bounds.initial(THERMAL.positions[b:b + 1], THERMAL.velocities[b:b + 1],
                                   MASSES, ETHANOL_Z)
    return pos, vel, bounds, np.arange(float(n))[None]


def _first(bounds, pos, vel, times, **kw):
    return sanity.first_violations(bounds, sanity.Frames(pos, vel, times, **kw))[0]


# --- the checks on hand-made frames -------------------------------------------------------

def test_ethanol_bonds_are_its_covalent_pairs_and_the_ic_rows_bonds():
    bonds = sanity.bonded_pairs(THERMAL.positions, ETHANOL_Z)
    rows = internal.row_bonds(ICDefinition(load_model(SHIPPED).description.ic_rows))
    assert {tuple(p) for p in bonds} == {tuple(sorted(p)) for p in rows.tolist()}
    assert len(bonds) == 8


def test_a_compressed_bond_is_named_with_its_lengths_and_time():
    pos, vel, bounds, times = _frames(6)
    c1, c2 = pos[0, 0, 0].copy(), pos[0, 0, 1].copy()
    pos[0, 3:, 1] = c1 + (c2 - c1) / np.linalg.norm(c2 - c1) * 0.23
    found = _first(bounds, pos, vel, times)
    start = np.linalg.norm(c2 - c1)
    assert found.check == "bond" and found.time_fs == 3.0
    assert str(found) == (f"bond C1-C2 at 0.23 Å (started at {start:.2f} Å; allowed 0.6-1.6 "
                          "times that) at t = 3 fs")


def test_a_stretched_bond_and_the_band_edges():
    pos, vel, bounds, times = _frames(3)
    o, h = pos[0, 0, 2], pos[0, 0, 3]  # O3-H4
    for k, factor in ((1, 1.55), (2, 1.65)):
        pos[0, k, 3] = o + (h - o) * factor
    found = _first(bounds, pos, vel, times)
    assert found.time_fs == 2.0 and str(found).startswith("bond O3-H4 at ")


def test_a_molecule_frozen_for_the_window_is_caught_a_turning_point_is_not():
    pos, vel, bounds, times = _frames(30)
    vel[0, 5] *= 0.01  # one cold frame: every small molecule has such instants
    assert _first(bounds, pos, vel, times) is None
    vel[0, 12:] *= 0.01  # cold from t = 12 fs on: frozen 10 fs after the last warm frame
    found = _first(bounds, pos, vel, times)
    assert found.check == "temperature" and found.time_fs == 21.0
    assert re.fullmatch(r"frozen: temperature 0\.0 K, below \d+\.\d K for 10 fs \(started at "
                        r"\d+\.\d K\) at t = 21 fs", str(found))
    # the same when the frames come in blocks whose boundary splits the cold stretch
    traj = Trajectory(times[0], pos[0], vel[0], ETHANOL_Z, MASSES)
    blocks = [Trajectory(times[0, a:b], pos[0, a:b], vel[0, a:b], ETHANOL_Z, MASSES)
              for a, b in ((0, 17), (17, 30))]
    assert str(sanity.check_trajectory(blocks)) == str(sanity.check_trajectory([traj]))
    assert str(sanity.check_trajectory([traj])) == str(found)


def test_an_overheated_molecule_and_a_cold_start():
    pos, vel, bounds, times = _frames(3)
    vel[0, 2] *= 5.0  # T x 25
    found = _first(bounds, pos, vel, times)
    assert found.time_fs == 2.0 and str(found).startswith("overheated: temperature ")
    # a start at rest: no frozen line, and the ceiling of a 300 K start (3000 K)
    rest = sanity.Bounds.initial(pos[:, 0], np.zeros_like(vel[:, 0]), MASSES, ETHANOL_Z)
    assert rest.temperature_K[0] == 0.0
    np.testing.assert_allclose(rest.temperature_band_K(), ([0.0], [3000.0]))
    assert _first(rest, pos, np.zeros_like(vel), times) is None
    vel = np.repeat(THERMAL.velocities[0][None, None], 3, axis=1)
    warm = vel * np.sqrt(2000.0 / bounds.temperature_K[0])
    assert _first(rest, pos, warm, times) is None
    assert _first(rest, pos, warm * np.sqrt(2.0), times).check == "temperature"


def test_an_exploding_molecule_too_fast_or_too_far():
    pos, vel, bounds, times = _frames(3)
    vel[0, 1, 4] = [1.5, 0.0, 0.0]
    assert str(_first(bounds, pos, vel, times)).startswith(
        "atom H5 at 1.5 Å/fs, faster than 1 Å/fs at t = 1 fs")
    pos, vel, bounds, times = _frames(3)
    pos[0, 2] *= 8.0
    assert str(_first(bounds, pos, vel, times)).startswith("exploding geometry: atom ")


def test_thermal_frames_pass_and_leading_axes_are_kept():
    bounds = sanity.Bounds.initial(THERMAL.positions, THERMAL.velocities, MASSES, ETHANOL_Z)
    pos = np.repeat(THERMAL.positions[:, None], 4, axis=1)
    vel = np.repeat(THERMAL.velocities[:, None], 4, axis=1)
    frames = sanity.Frames(np.stack([pos, pos]), np.stack([vel, vel]),
                           np.tile(np.arange(4.0), (10, 1)))
    found = sanity.first_violations(bounds, frames)
    assert found.shape == (2, 10) and all(v is None for v in found.flat)
    assert np.all(bounds.n_dof == 21)
    assert np.all((bounds.temperature_K > 150) & (bounds.temperature_K < 500))


def test_the_internal_temperature_leaves_out_translation_and_rotation():
    x = ETHANOL_POSITIONS_A
    rel = x - mom.centre_of_mass(x, MASSES)
    rigid = np.array([0.01, -0.02, 0.005]) + np.cross([0.003, 0.001, -0.002], rel)
    # (the ridge that stands in for a pseudo-inverse costs 1e-8 of the rotation's energy)
    total = mom.kinetic_energy_eV(rigid, MASSES)
    assert sanity.internal_kinetic_energy_eV(x, rigid, MASSES) == pytest.approx(
        0.0, abs=1e-7 * total)
    v = thermal_velocities(3)
    internal_v = mom.restore_momentum(x, v, MASSES, np.zeros(3), np.zeros(3))
    expected = 2 * mom.kinetic_energy_eV(internal_v, MASSES) / (21 * 8.617333262e-5)
    assert sanity.internal_temperature_K(x, internal_v + rigid, MASSES, 21) == pytest.approx(
        expected, rel=1e-6)
    line = np.array([[0.0, 0.0, 0.0], [1.16, 0.0, 0.0], [2.32, 0.0, 0.0]])
    assert sanity.degrees_of_freedom(line, np.array([16.0, 12.0, 16.0])) == 4
    assert sanity.degrees_of_freedom(line[:2], np.array([1.0, 1.0])) == 1
    assert sanity.degrees_of_freedom(x, MASSES) == 21
    one = sanity.Bounds.initial(line[None, :1], np.ones((1, 1, 3)), np.array([4.0]), [2])
    assert one.n_dof[0] == 0 and np.isnan(one.temperature_K[0])
    assert _first(one, line[None, None, :1], np.ones((1, 1, 1, 3)) * 0.5, np.zeros((1, 1))) is None


def test_an_unknown_mode_is_refused():
    with pytest.raises(InputError, match="unphysical must be one of error, warn"):
        sanity.check_mode("ignore")


# --- the unrolling, predict and evaluate ------------------------------------------------------

@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("sanity")
    init = d / "init.extxyz"
    write_trajectory(Trajectory(time_fs=[0.0], positions=ETHANOL_POSITIONS_A[None],
                                velocities=thermal_velocities(1)[None],
                                atomic_numbers=ETHANOL_Z, masses=MASSES), init)
    return {"dir": d, "init": init,
            "collapse": write_model(d / "collapse.onnx", growth=-0.85),
            "freeze": write_model(d / "freeze.onnx", damping=1.0),
            "free_err": write_model(d / "free_err.onnx", energy_error_eV=0.01)}


def test_a_collapsing_model_stops_the_trajectory_and_says_which_bond_and_when(models):
    # growth -0.85 shrinks the molecule to 0.15 of its size over each segment: every bond
    # passes 0.6 of its length at t = 4.7 fs, caught at the frame at 5 fs.
    traj = load_model(models["collapse"]).propagate(ETHANOL_POSITIONS_A, thermal_velocities(1),
                                                    30.0, 1.0)[0]
    assert traj.n_frames == 1
    assert re.fullmatch(r"trajectory 0: bond \w+-\w+ at 0\.\d\d Å \(started at \d\.\d\d Å; "
                        r"allowed 0\.6-1\.6 times that\) at t = 5 fs", traj.info["failure"])
    warned = load_model(models["collapse"]).propagate(
        ETHANOL_POSITIONS_A, thermal_velocities(1), 30.0, 1.0, unphysical="warn")[0]
    assert warned.n_frames == 31 and "failure" not in warned.info
    assert warned.info["unphysical"] == traj.info["failure"]


def test_a_freezing_model_stops_the_trajectory_once_frozen_for_the_window(models):
    # damping 1 stops every atom at the end of the first segment (below T0 / 30 from 8.2 fs
    # on, not yet for 10 fs); the second segment stays frozen and fails at its end.
    traj = load_model(models["freeze"]).propagate(ETHANOL_POSITIONS_A, thermal_velocities(1),
                                                  40.0, 1.0)[0]
    assert traj.time_fs[-1] == 10.0
    assert re.fullmatch(r"trajectory 0: frozen: temperature 0\.0 K, below \d+\.\d K for 10 fs "
                        r"\(started at \d+\.\d K\) at t = 20 fs", traj.info["failure"])


def test_a_member_that_breaks_a_bond_makes_the_ensemble_take_the_other(models):
    # collapse has no energy error, free_err 0.01 eV: the energy ranks collapse first, but
    # its segments fail the bond check, so free_err is used for every segment.
    model = load_model([models["collapse"], models["free_err"]])
    traj = model.propagate(ETHANOL_POSITIONS_A, TRANSLATION_A_PER_FS, 30.0, 1.0)[0]
    assert "failure" not in traj.info and traj.n_frames == 31
    assert traj.info["segment_members"] == [1, 1, 1]


def test_the_mode_is_part_of_a_checkpoints_fingerprint(models):
    model = load_model(models["collapse"])
    keys = {mode: model.run_key(ETHANOL_POSITIONS_A[None], TRANSLATION_A_PER_FS[None], 30.0,
                                1.0, True, 10.0, unphysical=mode) for mode in ("error", "warn")}
    assert keys["error"] != keys["warn"]


def test_predict_refuses_velocities_a_thousand_times_too_fast():
    model = load_model(SHIPPED)
    pos, vel = THERMAL.positions[:2], THERMAL.velocities[:2].copy()
    vel[1] *= 1000.0
    with pytest.raises(ModelError, match=r"^the prediction from initial condition 1 is "
                                         r"unphysical: atom H\d at \d+\.\d Å/fs, faster than "
                                         r"1 Å/fs at t = 0 fs$"):
        model.predict(pos, vel, np.arange(11.0))
    with pytest.raises(ModelError, match="initial condition 1 is unphysical: exploding"):
        model.predict(pos, vel, [5.0, 10.0])
    assert model.predict(pos, vel, [5.0, 10.0], check=False).positions.shape == (2, 2, 9, 3)
    assert model.predict(pos[:1], vel[:1], np.arange(11.0)).positions.shape == (1, 11, 9, 3)


def test_evaluate_does_not_call_a_frozen_run_stable(models):
    model = load_model(models["freeze"])
    bonds = ev.coordinate_sets(ICDefinition(model.description.ic_rows))["bond"]
    equilibrium = internal.bond_lengths(ETHANOL_POSITIONS_A, *bonds.T)
    for mode in ("error", "warn"):
        traj = model.propagate(ETHANOL_POSITIONS_A, thermal_velocities(1), 40.0, 1.0,
                               unphysical=mode)
        row = ev.stability(traj, bonds, equilibrium, 40.0)[0]
        assert not row["stable"], mode
        if mode == "error":  # stopped at the end of the second segment, frozen since 10 fs
            assert row["failure"].endswith("at t = 20 fs") and row["reached_fs"] == 10.0
        else:  # frames from 9 fs on are below T0 / 30: frozen at 18 fs
            assert row["unphysical"].startswith("frozen: ") and row["reached_fs"] == 40.0
            assert row["first_unstable_fs"] == 18.0
    free = load_model(models["free_err"]).propagate(ETHANOL_POSITIONS_A, TRANSLATION_A_PER_FS,
                                                    40.0, 1.0)
    assert ev.stability(free, bonds, equilibrium, 40.0)[0]["stable"]


# --- the CLI --------------------------------------------------------------------------------

def _run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def test_cli_propagate_exits_1_naming_the_trajectory_or_warns_with_warn(models, tmp_path):
    base = ("propagate", "--model", models["collapse"], "--init", models["init"],
            "--duration-fs", 20, "--dt-fs", 1, "--device", "cpu", "--out")
    result = _run(*base, tmp_path / "a.extxyz")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert re.fullmatch(r"gicnet: warning: trajectory 0: bond .* at t = 5 fs", lines[-2])
    assert lines[-1] == ("gicnet: error: 1 of 1 trajectories stopped early; their frames up "
                         "to the failure were written")
    assert read_trajectory(tmp_path / "a.extxyz").n_frames == 1
    result = _run(*base, tmp_path / "b.extxyz", "--unphysical", "warn")
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("gicnet: warn")]
    assert len(warnings) == 1 and re.fullmatch(
        r"gicnet: warning: trajectory 0: bond .* at t = 5 fs", warnings[0])
    written = read_trajectory(tmp_path / "b.extxyz")
    assert written.n_frames == 21 and written.info["unphysical"] == warnings[0][17:]


def test_cli_predict_refuses_a_thousandfold_velocity_and_warns_with_warn(tmp_path):
    init = tmp_path / "fast.extxyz"
    write_trajectory(Trajectory(time_fs=[0.0], positions=THERMAL.positions[:1],
                                velocities=THERMAL.velocities[:1] * 1000.0,
                                atomic_numbers=ETHANOL_Z, masses=MASSES), init)
    base = ("predict", "--init", init, "--times", "0:10:1", "--device", "cpu", "--out")
    result = _run(*base, tmp_path / "p.extxyz")
    assert result.exit_code == 1
    assert re.fullmatch(r"gicnet: error: --init frame 0: unphysical prediction: atom H\d at "
                        r"\d+\.\d Å/fs, faster than 1 Å/fs at t = 0 fs\n", result.stderr)
    assert not (tmp_path / "p.extxyz").exists()
    result = _run(*base, tmp_path / "q.extxyz", "--unphysical", "warn")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("gicnet: warning: --init frame 0: unphysical prediction:")
    assert (tmp_path / "q.extxyz").exists()


def test_cli_evaluate_reports_a_frozen_run_as_not_stable(models, tmp_path):
    # A reference that stands still with thermal velocities: the long run starts from its
    # frame 0 (the segment errors against it do not matter here).
    times = np.arange(0.0, 40.5, 0.5)
    shape = (times.size, 9, 3)
    warm = Trajectory(time_fs=times, positions=np.broadcast_to(ETHANOL_POSITIONS_A, shape),
                      velocities=np.broadcast_to(thermal_velocities(1), shape),
                      atomic_numbers=ETHANOL_Z, masses=MASSES)
    write_trajectory(warm, tmp_path / "warm.h5")
    for mode in ("error", "warn"):
        result = _run("evaluate", "--model", models["freeze"], "--reference", tmp_path / "warm.h5",
                      "--out", tmp_path / f"eval_{mode}", "--starts-per-reference", 2,
                      "--long-starts", 1, "--long-duration-fs", 30, "--device", "cpu",
                      "--unphysical", mode)
        assert result.exit_code == 0, result.stderr
        assert "stable: 0 of 1 x 30 fs" in result.stdout
        at = {"error": 20, "warn": 18}[mode]
        assert re.fullmatch(f"gicnet: warning: trajectory 0: frozen: .* at t = {at} fs\n",
                            result.stderr), result.stderr


# --- the shipped model ------------------------------------------------------------------------

def test_the_shipped_model_passes_the_checks_for_a_picosecond_at_300_K(tmp_path):
    # Margins measured over 10 x 50 ps (docs/robustness.md, "Physical sanity"): bonds
    # 0.86-1.16 of their initial length, T at most 3.1 T0 (0.24 of the ceiling), the
    # warmest frame of every 10 fs at least 0.12 T0, atoms below 0.09 Å/fs.
    model = load_model(SHIPPED)
    trajectories = model.propagate(THERMAL.positions, THERMAL.velocities, 1000.0, 1.0)
    bounds = sanity.Bounds.initial(THERMAL.positions, THERMAL.velocities, MASSES, ETHANOL_Z)
    _, ceiling = bounds.temperature_band_K()
    for b, traj in enumerate(trajectories):
        assert "failure" not in traj.info and traj.n_frames == 1001
        assert sanity.check_trajectory([traj]) is None
        pos, vel = traj.positions.astype(np.float64), traj.velocities.astype(np.float64)
        ratio = (np.linalg.norm(pos[:, bounds.bonds[:, 0]] - pos[:, bounds.bonds[:, 1]], axis=-1)
                 / bounds.bond_lengths_A[b])
        assert 0.8 < ratio.min() and ratio.max() < 1.25
        assert sanity.internal_temperature_K(pos, vel, MASSES, 21).max() < 0.5 * ceiling[b]
        assert np.linalg.norm(vel, axis=-1).max() < 0.2
    result = _run("predict", "--times", "0:10:0.5", "--device", "cpu", "--out",
                  tmp_path / "p.h5")
    assert result.exit_code == 0 and "unphysical" not in result.stderr, result.stderr
