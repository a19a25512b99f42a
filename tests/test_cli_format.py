"""--format: the output format when the --out suffix does not tell it."""

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from gicnet_runtime.cli.options import FORMAT_HINT
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError
from gicnet_runtime.io.formats import FORMATS, format_of, read_trajectory, write_trajectory
from tests.onnx_fixtures import (
    ETHANOL_MASSES_AMU,
    ETHANOL_POSITIONS_A,
    ETHANOL_Z,
    thermal_velocities,
    write_model,
)

VELOCITIES = thermal_velocities(3, count=1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("format")
    init = write_trajectory(Trajectory(
        time_fs=[0.0], positions=ETHANOL_POSITIONS_A[None], velocities=VELOCITIES,
        atomic_numbers=ETHANOL_Z, masses=ETHANOL_MASSES_AMU), folder / "init.extxyz")
    return {"init": init, "model": write_model(folder / "free.onnx")}


def _predict(files, out, *args):
    return CliRunner().invoke(cli.main, [str(a) for a in (
        "predict", "--model", files["model"], "--init", files["init"], "--times", "0:10:5",
        "--out", out, *args)])


def test_format_of_ends_its_error_with_the_hint():
    with pytest.raises(InputError, match=r"from its suffix \(.*\); pass fmt$"):
        format_of("run.dat")
    with pytest.raises(InputError, match="; pass --format$"):
        format_of("run.dat", hint=FORMAT_HINT)
    assert format_of("run.dat", "npz", hint=FORMAT_HINT) == "npz"


def test_an_unknown_suffix_names_the_option(files, tmp_path):
    result = _predict(files, tmp_path / "pred.dat")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"gicnet: error: cannot tell the format of "
                                    f"{tmp_path / 'pred.dat'} from its suffix")
    assert result.stderr.rstrip().endswith("; pass --format")
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_overrides_the_suffix(files, tmp_path, fmt):
    out = tmp_path / "pred.dat"
    result = _predict(files, out, "--format", fmt)
    assert result.exit_code == 0, result.stderr
    traj = read_trajectory(out, fmt=fmt)
    assert traj.n_frames == 3
    np.testing.assert_allclose(traj.positions[2], ETHANOL_POSITIONS_A + VELOCITIES[0] * 10.0,
                               atol=2e-6)


def test_an_unknown_format_is_a_usage_error(files, tmp_path):
    result = _predict(files, tmp_path / "pred.dat", "--format", "pdb")
    assert result.exit_code == 2
    assert "'pdb' is not one of 'h5md', 'extxyz', 'traj', 'npz'" in result.stderr
