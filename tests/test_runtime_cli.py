"""The runtime commands: gicnet predict, propagate and info (click's CliRunner)."""

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from gicnet_runtime.core.session import cuda_available
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.io.formats import read_trajectory, write_trajectory
from gicnet_runtime.units import ase_velocities_to_a_per_fs
from tests.onnx_fixtures import (
    ETHANOL_MASSES_AMU,
    ETHANOL_POSITIONS_A,
    ETHANOL_Z,
    thermal_velocities,
    write_model,
)

VELOCITIES = thermal_velocities(4, count=2)
#: Free flight from VELOCITIES breaks a bond at 16.5 fs, which propagate's physical-sanity
#: checks stop (tests/test_sanity.py); longer runs here take them as warnings.
MECHANICS = ("--unphysical", "warn")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    init = folder / "init.extxyz"
    write_trajectory(Trajectory(time_fs=[0.0, 1.0], positions=np.stack([ETHANOL_POSITIONS_A] * 2),
                                velocities=VELOCITIES, atomic_numbers=ETHANOL_Z,
                                masses=ETHANOL_MASSES_AMU), init)
    return {"init": init, "free": write_model(folder / "free.onnx"),
            "err": write_model(folder / "err.onnx", energy_error_eV=0.02),
            "explode": write_model(folder / "explode.onnx", growth=1.0)}


def _run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def test_info_prints_the_description(files):
    result = _run("info", "--model", files["free"])
    assert result.exit_code == 0, result.output
    assert "tc_fs: 10" in result.output and "atoms (9): C C O H H H H H H" in result.output


def test_predict_writes_ase_readable_extxyz(files, tmp_path):
    out = tmp_path / "pred.extxyz"
    result = _run("predict", "--model", files["free"], "--init", files["init"],
                  "--times", "0:10:2.5", "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    from ase.io import read

    frames = read(str(tmp_path / "pred_001.extxyz"), index=":")
    times = np.array([0.0, 2.5, 5.0, 7.5, 10.0])
    assert len(frames) == 5
    np.testing.assert_allclose(frames[3].get_positions(),
                               ETHANOL_POSITIONS_A + VELOCITIES[1] * times[3], atol=2e-6)
    np.testing.assert_allclose(ase_velocities_to_a_per_fs(frames[3].get_velocities()),
                               VELOCITIES[1], atol=1e-8)


def test_propagate_two_conditions_to_numbered_h5md(files, tmp_path):
    out = tmp_path / "run.h5"
    result = _run("propagate", "--model", files["free"], "--model", files["err"],
                  "--init", files["init"], "--duration-fs", 30, "--dt-fs", 0.5, "--out", out,
                  *MECHANICS)
    assert result.exit_code == 0, result.stderr
    for b in range(2):
        traj = read_trajectory(tmp_path / f"run_{b:03d}.h5")
        assert traj.n_frames == 61
        assert traj.info["segment_members"] == [0, 0, 0]
        np.testing.assert_allclose(traj.positions[-1],
                                   ETHANOL_POSITIONS_A + VELOCITIES[b] * 30.0, atol=1e-5)
    assert not out.exists()


def test_failures_are_reported_and_valid_frames_written(files, tmp_path):
    out = tmp_path / "run.npz"
    result = _run("propagate", "--model", files["explode"], "--init", files["init"],
                  "--duration-fs", 50, "--dt-fs", 1, "--out", out, *MECHANICS)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-3:] == [
        "gicnet: warning: trajectory 0: exploding geometry between t = 20 and 30 fs",
        "gicnet: warning: trajectory 1: exploding geometry between t = 20 and 30 fs",
        ("gicnet: error: 2 of 2 trajectories stopped early; their frames up to the failure "
        "were written")]
    assert read_trajectory(tmp_path / "run_000.npz").time_fs[-1] == pytest.approx(20.0)


@pytest.mark.parametrize("args, message", [
    (["--times", "0:20:1"], "gicnet: error: times must lie within the segment [0, 10] fs"),
    (["--times", "x"], "gicnet: error: cannot read times 'x'"),
    (["--times", "1", "--init", "missing.extxyz"], ("gicnet: error: initial-conditions file "
                                                   "not found: missing.extxyz")),
])
def test_errors_are_one_line(files, tmp_path, args, message):
    base = ["predict", "--model", files["free"], "--init", files["init"], "--out",
            tmp_path / "p.xyz"]
    result = _run(*base, *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1


def test_cuda_without_a_gpu_is_one_line(files, tmp_path):
    if cuda_available():
        pytest.skip("a CUDA GPU is present")
    result = _run("propagate", "--model", files["free"], "--init", files["init"],
                  "--duration-fs", 10, "--dt-fs", 1, "--out", tmp_path / "x.h5",
                  "--device", "cuda")
    assert result.exit_code == 1
    assert result.stderr.startswith("gicnet: error: device 'cuda' requested but no usable")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--segment-fs", "12"], "gicnet: error: segment length must lie in (0, 10] fs"),
    (["--segment-fs", "0"], "gicnet: error: segment length must lie in (0, 10] fs"),
])
def test_bad_segment_lengths_are_one_line(files, tmp_path, args, message):
    result = _run("propagate", "--model", files["free"], "--init", files["init"],
                  "--duration-fs", 20, "--out", tmp_path / "x.h5", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "x_000.h5").exists()


def test_propagate_reports_its_unrolling_settings(files, tmp_path):
    result = _run("propagate", "--model", files["free"], "--init", files["init"],
                  "--duration-fs", 20, "--dt-fs", 1, "--segment-fs", 5, "--no-restore-energy",
                  "--out", tmp_path / "x.h5", *MECHANICS)
    assert result.exit_code == 0, result.stderr
    assert "segments of 5 fs (the model's tc: 10 fs), energy restoration off" in result.stdout
    assert read_trajectory(tmp_path / "x_000.h5").info["segment_fs"] == 5.0


@pytest.mark.parametrize("mode, member", [("mean", -1), ("select", 0)])
def test_predict_of_an_ensemble(files, tmp_path, mode, member):
    # free and err predict the same positions (err differs in energy only): no spread, and
    # "select" takes free, the member with the smaller energy error
    out = tmp_path / "pred.h5"
    result = _run("predict", "--model", files["free"], "--model", files["err"], "--init",
                  files["init"], "--times", "0:10:5", "--ensemble", mode, "--out", out)
    assert result.exit_code == 0, result.stderr
    assert ("members' spread up to 0.0000 A" in result.stdout) is (mode == "mean")
    traj = read_trajectory(tmp_path / "pred_001.h5")
    assert traj.info["member"] == member
    np.testing.assert_allclose(traj.positions[2], ETHANOL_POSITIONS_A + VELOCITIES[1] * 10.0,
                               atol=2e-6)
