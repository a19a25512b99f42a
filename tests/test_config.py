"""gicnet_train.config: TrainConfig from JSON and back, one-line errors naming the key,
the differences a resume reports, and the ethanol recipe's settings in the new schema."""

import dataclasses
import importlib.util
import json
import math
import re
from pathlib import Path

import pytest

from gicnet_runtime.errors import InputError
from gicnet_train.config import (
    LIMITS,
    RESUMABLE,
    EnergyTrainConfig,
    LossWeights,
    ModelConfig,
    TrainConfig,
    config_from_dict,
    default_setting,
    load_config,
    resume_differences,
)

REPO = Path(__file__).resolve().parent.parent
CUSTOM = TrainConfig(model=ModelConfig(hidden=(64, 32), tc_fs=5.0, head="time", n_basis=4),
                     weights=LossWeights(angle=2.0, energy=0.0),
                     energy=EnergyTrainConfig(hidden=(16,), epochs=2), epochs=7, lr=3e-3,
                     patience=0, seed=5, time_budget_s=100.0, time_weighting="linear")


def _leaves(d, prefix=""):
    for key, value in d.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


@pytest.mark.parametrize("cfg", [TrainConfig(), CUSTOM])
def test_to_dict_and_back_through_json(cfg):
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data == cfg.to_dict()
    assert config_from_dict(data) == cfg


def test_missing_keys_take_the_defaults_and_ints_count_as_floats():
    cfg = config_from_dict({"model": {"tc_fs": 5}, "epochs": 3})
    assert cfg == dataclasses.replace(TrainConfig(), epochs=3,
                                      model=dataclasses.replace(ModelConfig(), tc_fs=5.0))
    assert isinstance(cfg.model.tc_fs, float)
    assert config_from_dict({}) == TrainConfig()


def test_every_setting_has_limits_that_its_default_meets():
    leaves = dict(_leaves(TrainConfig().to_dict()))
    assert set(leaves) == set(LIMITS)
    assert RESUMABLE <= set(leaves)
    for key, value in leaves.items():
        assert default_setting(key) == (tuple(value) if isinstance(value, list) else value)


@pytest.mark.parametrize(("data", "message"), [
    ({"model": {"hiden": [8]}}, 'unknown setting "model.hiden" in cfg.json (known there: hidden,'),
    ({"epoch": 3}, 'unknown setting "epoch" in cfg.json'),
    ({"epochs": "ten"}, 'setting "epochs" in cfg.json must be an integer, got "ten"'),
    ({"epochs": 2.5}, 'setting "epochs" in cfg.json must be an integer, got 2.5'),
    ({"epochs": True}, 'setting "epochs" in cfg.json must be an integer, got true'),
    ({"lr": "fast"}, 'setting "lr" in cfg.json must be a number, got "fast"'),
    ({"model": {"hidden": 8}}, 'setting "model.hidden" in cfg.json must be a non-empty list of '
                               'integers, got 8'),
    ({"model": {"hidden": []}}, "must be a non-empty list of integers, got []"),
    ({"model": {"hidden": [8, -4]}}, 'setting "model.hidden" in cfg.json must hold integers >= 1'),
    ({"model": [1]}, 'setting "model" in cfg.json must be a JSON object, got [1]'),
    ({"model": {"head": "fourier"}}, 'setting "model.head" in cfg.json must be one of basis, time'),
    ({"model": {"n_basis": 300}}, "must be an integer in [1, 256], got 300"),
    ({"epochs": 0}, 'setting "epochs" in cfg.json must be an integer >= 1, got 0'),
    ({"model": {"tc_fs": -1}}, "must be a finite number > 0, got -1.0"),
    ({"val_fraction": 1.0}, 'setting "val_fraction" in cfg.json must be a finite number in (0, 1)'),
    ({"seed": -1}, "must be an integer in [0, 100000000], got -1"),
    ({"time_weighting": "log"}, "must be one of uniform, linear"),
])
def test_bad_settings_give_one_line_errors_naming_the_key(data, message):
    with pytest.raises(InputError) as err:
        config_from_dict(data, source="cfg.json")
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_numbers_are_refused(value):
    with pytest.raises(InputError, match="must be a finite number > 0"):
        config_from_dict({"model": {"gate_width_fs": value}})


def test_labels_name_command_line_flags():
    with pytest.raises(InputError, match=r"^--tc-fs must be a finite number > 0, got inf$"):
        config_from_dict({"model": {"tc_fs": math.inf}}, labels={"model.tc_fs": "--tc-fs"})


def test_load_config_puts_overrides_over_the_file(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"epochs": 7, "model": {"hidden": [8], "tc_fs": 5.0}}))
    cfg = load_config(path, {"epochs": 9, "model.n_basis": 4, "energy.epochs": 2})
    assert (cfg.epochs, cfg.model.hidden, cfg.model.tc_fs, cfg.model.n_basis,
            cfg.energy.epochs) == (9, (8,), 5.0, 4, 2)
    assert load_config() == TrainConfig()
    with pytest.raises(InputError, match=r'^--epochs must be an integer >= 1, got 0$'):
        load_config(path, {"epochs": 0}, {"epochs": "--epochs"})
    with pytest.raises(InputError, match=rf'^setting "lr" in {path} must be'):
        path.write_text(json.dumps({"lr": -1}))
        load_config(path, {"epochs": 2}, {"epochs": "--epochs"})


@pytest.mark.parametrize(("text", "message"), [
    ("{oops", "are not valid JSON"), ("[1, 2]", "must hold a JSON object, got [1, 2]"),
])
def test_unreadable_settings_files(tmp_path, text, message):
    path = tmp_path / "cfg.json"
    path.write_text(text)
    with pytest.raises(InputError, match=re.escape(message)):
        load_config(path)
    with pytest.raises(InputError, match="cannot read settings"):
        load_config(tmp_path / "missing.json")


def test_old_run_configs_keep_loading():
    """run.json files from before energy_time_stride, energy_rows, patience and heads
    existed."""
    old = TrainConfig().to_dict()
    for key in ("energy_time_stride", "energy_rows", "rollout_rows", "patience",
                "energy_saturation_ev", "rollout_segments"):
        del old[key]
    del old["model"]["head"], old["model"]["n_basis"]
    cfg = TrainConfig.from_dict(old)
    assert (cfg.energy_time_stride, cfg.energy_rows, cfg.patience, cfg.model.head,
            cfg.energy_saturation_ev, cfg.rollout_segments) == (1, 0, 0, "time", 0.0, 1)
    # ...and runs made through the API with values the command line refuses.
    api_run = dataclasses.replace(TrainConfig(), lr=0.0, lr_min=0.0)
    assert TrainConfig.from_dict(api_run.to_dict()) == api_run


def test_resume_differences_name_the_fields():
    before = dataclasses.replace(TrainConfig(), epochs=30)
    after = dataclasses.replace(before, epochs=50, model=ModelConfig(hidden=(256,)))
    assert resume_differences(before, after) == ["model.hidden [512, 256, 128] -> [256]",
                                                 "epochs 30 -> 50"]
    assert resume_differences(before, dataclasses.replace(before, model=ModelConfig(
        head="time"))) == ['model.head "basis" -> "time"']


def test_time_budget_and_checkpoint_interval_may_change_on_resume():
    before = TrainConfig()
    after = dataclasses.replace(before, time_budget_s=3300.0, checkpoint_every_s=5.0)
    assert resume_differences(before, after) == []


def _recipe():
    spec = importlib.util.spec_from_file_location("ethanol_model",
                                                  REPO / "recipes" / "ethanol_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_ethanol_recipe_trains_with_the_settings_its_flags_gave():
    """The recipe's "train" section is a config file that gives the same TrainConfig as the
    command-line flags the recipe passed before (--epochs 200 --patience 10 ...), and its
    "finetune" section a second stage: those settings with the chained-segment term on,
    over two segments after the first."""
    recipe = _recipe()
    settings = recipe.load_settings()
    flags = TrainConfig(
        model=ModelConfig(hidden=(512, 256, 128), tc_fs=10.0, gate_width_fs=2.5, head="basis",
                          n_basis=16),
        weights=dataclasses.replace(LossWeights(), energy=0.05),
        energy=dataclasses.replace(EnergyTrainConfig(), epochs=30),
        epochs=200, batch_size=256, lr=0.001, stride=2, times_per_pair=0, patience=10, seed=0,
        checkpoint_every_s=60.0, time_budget_s=2450.0, grad_clip=0.0, energy_saturation_ev=1.0)
    assert config_from_dict(settings["train"]) == flags
    assert settings["train_options"] == {"ensemble": 2, "threads": 1}
    (base_dir, base), (run_dir, finetune) = recipe.stages(settings)
    assert (base_dir, base) == (recipe.ROOT / "runs" / "ethanol-base", settings["train"])
    assert run_dir == recipe.ROOT / "runs" / "ethanol"
    assert config_from_dict(finetune) == dataclasses.replace(
        flags, weights=dataclasses.replace(flags.weights, rollout=1.0), epochs=30, lr=2e-4,
        lr_min=1e-5, warmup_steps=50, rollout_segments=2, time_budget_s=600.0)


#: A fine-tuning stage over the ethanol recipe's settings (the chained-segment term on, a
#: lower learning rate, its own budget).
FINETUNE = {"weights": {"rollout": 1.0}, "lr": 2e-4, "warmup_steps": 50, "time_budget_s": 900.0}


def test_a_finetune_section_makes_a_second_stage_from_the_first():
    recipe = _recipe()
    settings = {**recipe.load_settings(), "finetune": FINETUNE}
    (base_dir, base), (run_dir, finetune) = recipe.stages(settings)
    assert (base_dir.name, run_dir.name) == ("ethanol-base", "ethanol")
    assert base == settings["train"]
    first = config_from_dict(base)
    assert config_from_dict(finetune) == dataclasses.replace(
        first, weights=dataclasses.replace(first.weights, rollout=1.0), lr=2e-4,
        warmup_steps=50, time_budget_s=900.0)


def test_the_ethanol_recipe_writes_its_config_and_passes_it(tmp_path, monkeypatch):
    recipe = _recipe()
    monkeypatch.setattr(recipe, "ROOT", tmp_path)
    (tmp_path / "data" / "ethanol" / "train").mkdir(parents=True)
    (tmp_path / "data" / "ethanol" / "train" / "a.h5").write_bytes(b"")
    settings = {**recipe.load_settings(), "finetune": FINETUNE}
    (base_dir, base), (run_dir, finetune) = recipe.stages(settings)
    path = recipe.write_config(base, base_dir, time_budget_s=600.0)
    assert path == tmp_path / "runs" / "ethanol-base" / "train_config.json"
    written = load_config(path)
    assert written == dataclasses.replace(config_from_dict(settings["train"]), time_budget_s=600.0)
    command = recipe.train_command(settings, base_dir, path, "cpu")
    assert command[2:4] == ["train", str(tmp_path / "data" / "ethanol" / "train" / "a.h5")]
    joined = " ".join(command[4:])
    assert f"--out {base_dir} --config {path} --ensemble 2 --threads 1 --device cpu --resume" \
        in joined and "--init-from" not in joined
    tuned = recipe.write_config(finetune, run_dir)
    command = " ".join(recipe.train_command(settings, run_dir, tuned, "cpu", base_dir))
    assert f"--out {run_dir} --config {tuned}" in command
    assert command.endswith(f"--init-from {base_dir}")
    with pytest.raises(InputError, match="^--time-budget-s must be a finite number >= 0"):
        recipe.write_config(base, base_dir, time_budget_s=-1.0)
