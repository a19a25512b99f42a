"""`gicnet train` / `export` on the command line: defaults read from the dataclasses (also for
`evaluate` and `simulate`), --config with flags over it, folders and globs as DATA,
one-line errors for bad numbers and for a resume with other settings, and a clean
"install gicnet[train]" error without torch."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from gicnet_runtime.analysis.evaluate import EvaluationSettings
from gicnet_runtime.cli import main
from gicnet_runtime.cli.evaluate import evaluate
from gicnet_runtime.cli.simulate import simulate
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError
from gicnet_runtime.io.formats import write_trajectory
from gicnet_runtime.reference.simulate import SimulationSettings
from gicnet_train.cli import SETTING_OPTIONS, export, train
from gicnet_train.config import TrainConfig, default_setting
from tests.onnx_fixtures import ETHANOL_MASSES_AMU, ETHANOL_POSITIONS_A, ETHANOL_Z

REPO = Path(__file__).resolve().parent.parent
#: The options of each command that are not fields of its settings dataclass.
NOT_SETTINGS = {
    "train": {"data", "out_dir", "config_file", "n_members", "device", "resume", "ic_file",
              "frame_spacing_fs", "threads", "only_members", "max_parameters", "init_from"},
    "evaluate": {"models", "references", "out_dir", "device", "threads", "max_memory_gb",
                 "max_segments", "max_engine_calls"},
    "simulate": {"n_trajectories", "seed", "workers", "out_dir", "fmt", "max_engine_calls",
                 "ray_address"},
}
#: A network and schedule small enough for a training run of seconds.
TINY = {"model": {"hidden": [8], "n_basis": 4}, "energy": {"hidden": [8], "epochs": 1},
        "epochs": 1, "batch_size": 64, "warmup_steps": 1, "stride": 4, "patience": 0}
DT_FS = 0.5


def _group() -> click.Group:
    """The gicnet group (its one-line error handling) with the training commands."""
    return type(main)("gicnet", commands=[train, export])


def _invoke(*args):
    return CliRunner().invoke(_group(), [str(a) for a in args])


def _field_defaults(cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls)}


def test_train_option_defaults_are_the_train_config_defaults():
    names = {p.name for p in train.params}
    assert names - set(SETTING_OPTIONS) == NOT_SETTINGS["train"]
    for param in train.params:
        if param.name in SETTING_OPTIONS:
            assert param.default == default_setting(SETTING_OPTIONS[param.name]), param.name
            assert param.show_default, param.name
    help_text = " ".join(_invoke("train", "--help").output.split())
    assert "--hidden W,W,... Hidden layer widths of the MLP. [default: 512, 256, 128]" in help_text


@pytest.mark.parametrize(("command", "cls"), [(evaluate, EvaluationSettings),
                                              (simulate, SimulationSettings)])
def test_runtime_option_defaults_are_the_settings_defaults(command, cls):
    fields = _field_defaults(cls)
    options = [p for p in command.params if isinstance(p, click.Option)]
    assert {p.name for p in command.params} - set(fields) == NOT_SETTINGS[command.name]
    for param in options:
        if param.name in fields:
            assert param.default == fields[param.name], param.name
            assert param.show_default or param.default is None, param.name


def test_keep_rotation_still_turns_the_rotation_removal_off():
    ctx = simulate.make_context("simulate", ["H2O", "--keep-rotation"])
    assert ctx.params["zero_angular_momentum"] is False
    assert simulate.make_context("simulate", ["H2O"]).params["zero_angular_momentum"] is True


@pytest.mark.parametrize(("args", "message"), [
    (["--hidden", "-4"], "--hidden must hold integers >= 1, got [-4]"),
    (["--tc-fs", "inf"], "--tc-fs must be a finite number > 0, got inf"),
    (["--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
    (["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
    (["--n-basis", "0"], "--n-basis must be an integer in [1, 256], got 0"),
    (["--patience", "-1"], "--patience must be an integer >= 0, got -1"),
    (["--checkpoint-every-s", "-5"], "--checkpoint-every-s must be a finite number >= 0"),
    (["--ensemble", "0"], "--ensemble must be >= 1, got 0"),
    (["--members", "a"], "--members must be comma-separated integers"),
])
def test_bad_numbers_give_one_line_errors(tmp_path, args, message):
    result = _invoke("train", tmp_path / "none.h5", "--out", tmp_path / "run", *args)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"gicnet: error: {message}")
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def _fake_md(seed: int, n_frames: int = 100) -> Trajectory:
    """Ethanol with every coordinate oscillating (exact velocities); not physics, data."""
    rng = np.random.default_rng(seed)
    shape = ETHANOL_POSITIONS_A.shape
    amplitude, omega = rng.normal(0, 0.02, shape), rng.uniform(0.2, 0.6, shape)
    phase = rng.uniform(0, 2 * np.pi, shape)
    t = np.arange(n_frames) * DT_FS
    arg = omega * t[:, None, None] + phase
    return Trajectory(time_fs=t, positions=ETHANOL_POSITIONS_A + amplitude * np.sin(arg),
                      velocities=amplitude * omega * np.cos(arg), atomic_numbers=ETHANOL_Z,
                      masses=ETHANOL_MASSES_AMU, potential_energy=rng.normal(0, 0.01, n_frames))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train_cli")
    for k in range(3):
        write_trajectory(_fake_md(k), folder / f"md{k}.h5")
    (folder / "notes.txt").write_text("not a trajectory")
    return folder


def _capture_fit(monkeypatch) -> dict:
    """Replace fit() by a recorder of its arguments."""
    import gicnet_train.fit

    seen = {}

    def fake_fit(trajectories, out, cfg, **kwargs):
        seen.update(trajectories=trajectories, cfg=cfg, **kwargs)
        return {"members": [], "verdict": {"members": [], "warnings": [], "ok": False,
                                           "energy": {"val_rmse_eV": 0.0,
                                                      "rmse_over_spread": 0.0}}}

    monkeypatch.setattr(gicnet_train.fit, "fit", fake_fit)
    return seen


def test_flags_given_override_the_config_file(data_dir, tmp_path, monkeypatch):
    seen = _capture_fit(monkeypatch)
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"epochs": 7, "lr": 0.002, "model": {"hidden": [8, 8]}}))
    result = _invoke("train", data_dir, "--out", tmp_path / "run", "--config", config,
                     "--epochs", 3, "--tc-fs", 5, "--seed", 0)
    assert result.exit_code == 0, result.output
    cfg = seen["cfg"]
    # Flags given win (even when they restate a default, like --seed 0), the file's other
    # keys stay, and the options left out do not reset the file's values to defaults.
    assert (cfg.epochs, cfg.model.tc_fs, cfg.lr, cfg.model.hidden) == (3, 5.0, 0.002, (8, 8))
    assert cfg.patience == TrainConfig().patience
    assert seen["sources"] == [str(data_dir / f"md{k}.h5") for k in range(3)]


def test_config_errors_name_the_file_key(data_dir, tmp_path):
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"model": {"hiden": [8]}}))
    result = _invoke("train", data_dir, "--out", tmp_path / "run", "--config", config)
    assert result.exit_code == 1
    assert result.output.startswith(f'gicnet: error: unknown setting "model.hiden" in {config}')


@pytest.mark.parametrize("pattern", ["md*.h5", "md[01].h5"])
def test_quoted_globs_expand(data_dir, tmp_path, monkeypatch, pattern):
    seen = _capture_fit(monkeypatch)
    result = _invoke("train", str(data_dir / pattern), "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    expected = sorted(p for p in data_dir.glob(pattern))
    assert seen["sources"] == [str(p) for p in expected] and len(seen["trajectories"]) > 1
    empty = _invoke("train", str(tmp_path / "*.h5"), "--out", tmp_path / "run")
    assert empty.exit_code == 1 and "no trajectory files in" in empty.output


def test_a_real_run_resumes_only_with_its_settings(data_dir, tmp_path):
    """The recipe's parallel pattern on a tiny run from a folder: the energy model first
    (--members ""), then members with --resume --members K.  Resuming with another epoch
    count or width names the fields and trains nothing; another time budget is allowed
    and recorded."""
    config, out = tmp_path / "tiny.json", tmp_path / "run"
    config.write_text(json.dumps(TINY))
    common = ("--out", out, "--config", config, "--ensemble", 2, "--device", "cpu",
              "--threads", 1)
    for step in (("--members", ""), ("--resume", "--members", 0)):
        result = _invoke("train", data_dir, *common, *step)
        assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["model"]["hidden"] == [8] and len(run["sources"]) == 3
    assert (out / "member_0" / "final.json").exists()

    other = _invoke("train", data_dir, *common, "--resume", "--members", 1, "--epochs", 2,
                    "--hidden", "16")
    assert other.exit_code == 1
    assert other.output == ("gicnet: error: --resume with settings different from the "
                            "interrupted run: model.hidden [8] -> [16], epochs 1 -> 2\n")
    assert not (out / "member_1").exists()

    budget = _invoke("train", data_dir, *common, "--resume", "--members", 1,
                     "--time-budget-s", 600)
    assert budget.exit_code == 0, budget.output
    assert "2 of 2 member(s) trained" in budget.output
    assert json.loads((out / "run.json").read_text())["config"]["time_budget_s"] == 600.0


@pytest.mark.parametrize("command", ["train", "export"])
def test_training_commands_without_torch_say_what_to_install(tmp_path, command):
    args = {"train": ["train", str(tmp_path / "x.h5"), "--out", str(tmp_path / "run")],
            "export": ["export", str(tmp_path), "--out", str(tmp_path / "m.onnx")]}[command]
    code = ("import sys\n"
            "sys.modules['torch'] = None  # what `import torch` meets without torch\n"
            "from gicnet_runtime.cli import main\n"
            "from gicnet_train.cli import export, train\n"
            "main.add_command(train)\nmain.add_command(export)\n"
            f"main({args!r})\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "gicnet[train]" in lines[0], result.stderr
    assert lines[0].startswith("gicnet: error: torch is not installed")
    assert "Traceback" not in result.stderr


def test_a_stop_request_saves_the_member_and_resume_finishes_it(data_dir, tmp_path,
                                                                 monkeypatch):
    """SIGINT/SIGTERM (here: the stop request they set, after 3 steps) saves last.pt and
    exits 130 saying how to resume; --resume then finishes the run."""
    import contextlib

    from gicnet_runtime.cli import signals

    polls = []

    @contextlib.contextmanager
    def stop_after_three():
        yield lambda: polls.append(1) or len(polls) >= 3

    config, out = tmp_path / "tiny.json", tmp_path / "run"
    config.write_text(json.dumps(dict(TINY, batch_size=4)))
    common = ("--out", out, "--config", config, "--device", "cpu", "--threads", 1)
    monkeypatch.setattr(signals, "graceful_stop", stop_after_three)
    stopped = _invoke("train", data_dir, *common)
    assert stopped.exit_code == 130, stopped.output
    assert "step 3 of" in stopped.output and "--resume" in stopped.output
    assert (out / "member_0" / "last.pt").exists()
    assert not (out / "member_0" / "final.json").exists()
    monkeypatch.undo()
    resumed = _invoke("train", data_dir, *common, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert (out / "member_0" / "final.json").exists()


def test_a_failed_first_call_leaves_no_run_folder(data_dir, tmp_path, monkeypatch):
    from gicnet_train import fit as fit_module

    def fail(*args, **kwargs):
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "run.json").write_text("{}")
        raise InputError("late failure before any checkpoint")

    monkeypatch.setattr(fit_module, "fit", fail)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    result = _invoke("train", data_dir, "--out", tmp_path / "run", "--config", config)
    assert result.exit_code == 1 and "late failure" in result.output
    assert not (tmp_path / "run").exists()
