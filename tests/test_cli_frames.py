"""Which frames of --init are initial conditions: --frames, --all-frames and the rule
that a long file (a trajectory) needs one of them."""

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from gicnet_runtime.cli.options import MAX_IMPLICIT_FRAMES
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError
from gicnet_runtime.io.formats import read_trajectory, write_trajectory
from gicnet_runtime.io.initial import parse_frames
from tests.onnx_fixtures import (
    ETHANOL_MASSES_AMU,
    ETHANOL_POSITIONS_A,
    ETHANOL_Z,
    thermal_velocities,
    write_model,
)

LONG = MAX_IMPLICIT_FRAMES + 1
VELOCITIES = thermal_velocities(7, count=LONG)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A reference-like H5MD trajectory of LONG frames, a 3-frame batch, a model."""
    folder = tmp_path_factory.mktemp("frames")

    def write(path, count):
        return write_trajectory(Trajectory(
            time_fs=0.5 * np.arange(count), positions=np.stack([ETHANOL_POSITIONS_A] * count),
            velocities=VELOCITIES[:count], atomic_numbers=ETHANOL_Z,
            masses=ETHANOL_MASSES_AMU), path)

    return {"long": write(folder / "ref.h5", LONG), "batch": write(folder / "batch.extxyz", 3),
            "model": write_model(folder / "free.onnx")}


def _predict(files, init, out, *args):
    return CliRunner().invoke(cli.main, [str(a) for a in (
        "predict", "--model", files["model"], "--init", init, "--times", "0,10", "--out", out,
        *args)])


@pytest.mark.parametrize("spec, expected", [
    ("0", [0]), ("0,5,10", [0, 5, 10]), ("10,0,5,5", [0, 5, 10]), ("0:100:10", range(0, 101, 10)),
    ("::250", [0, 250, 500, 750, 1000]), ("-1", [1000]), ("-3:", [998, 999, 1000]),
    ("2:4", [2, 3, 4]), ("0, 7:9 ,1000", [0, 7, 8, 9, 1000]),
])
def test_parse_frames(spec, expected):
    np.testing.assert_array_equal(parse_frames(spec, 1001), list(expected))


@pytest.mark.parametrize("spec, message", [
    ("1001", "frame 1001 is outside the 1001 frames (0 to 1000)"),
    ("-1002", "frame -1002 is outside"),
    ("a", "cannot read frames 'a'"),
    ("1:2:3:4", "cannot read frames"),
    ("0:10:0", "frame step must be a positive integer"),
    ("5:2", "frame range '5:2' is empty"),
    (" , ", "no frames given"),
])
def test_bad_frame_specs(spec, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_frames(spec, 1001)


def test_a_long_trajectory_needs_frames(files, tmp_path):
    result = _predict(files, files["long"], tmp_path / "p.npz")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"gicnet: error: {files['long']} holds {LONG} frames, more than the "
        f"{MAX_IMPLICIT_FRAMES} taken as initial conditions unasked; pick some with --frames")
    assert "--all-frames" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_frames_pick_initial_conditions(files, tmp_path):
    result = _predict(files, files["long"], tmp_path / "p.npz", "--frames", "0,50:100:50")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p_000.npz", "p_001.npz", "p_002.npz"]
    for k, frame in enumerate([0, 50, 100]):
        traj = read_trajectory(tmp_path / f"p_{k:03d}.npz")
        np.testing.assert_allclose(traj.velocities[0], VELOCITIES[frame], atol=1e-6)
        assert f"p_{k:03d}.npz  2 frames, 0-10 fs, from --init frame {frame}" in result.stdout


def test_one_frame_keeps_the_name(files, tmp_path):
    result = _predict(files, files["long"], tmp_path / "p.npz", "--frames", "-1")
    assert result.exit_code == 0, result.stderr
    traj = read_trajectory(tmp_path / "p.npz")
    np.testing.assert_allclose(traj.velocities[0], VELOCITIES[LONG - 1], atol=1e-6)


def test_all_frames_takes_every_frame(files, tmp_path):
    result = _predict(files, files["long"], tmp_path / "p.npz", "--all-frames")
    assert result.exit_code == 0, result.stderr
    assert len(list(tmp_path.glob("p_*.npz"))) == LONG


def test_a_short_batch_needs_no_frames(files, tmp_path):
    result = _predict(files, files["batch"], tmp_path / "p.npz")
    assert result.exit_code == 0, result.stderr
    assert len(list(tmp_path.glob("p_*.npz"))) == 3


@pytest.mark.parametrize("args, message", [
    (["--frames", str(LONG)], f"frame {LONG} is outside the {LONG} frames"),
    (["--frames", "x"], "cannot read frames 'x'"),
    (["--frames", "0", "--all-frames"], "give --frames or --all-frames, not both"),
])
def test_bad_frames_are_one_line(files, tmp_path, args, message):
    result = _predict(files, files["long"], tmp_path / "p.npz", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith("gicnet: error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
