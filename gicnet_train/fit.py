"""`gicnet train`: from trajectory files to a trained ensemble in a run folder.

Run folder layout::

    run.json            config, molecule, IC rows, data files, split
    energy/model.pt     the auxiliary energy model (+ energy/metrics.json)
    member_K/           last.pt, best.pt, history.json, final.json for member K
    summary.json        validation metrics of every member
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from gicnet_runtime.core.icdef import ICDefinition
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError
from gicnet_train import checkpoint as ckpt
from gicnet_train.config import TrainConfig, resume_differences
from gicnet_train.energy import EnergyModel
from gicnet_train.energy_fit import fit_energy
from gicnet_train.icbuild import build_icdef
from gicnet_train.metrics import linear_baseline, predict_pairs, segment_errors
from gicnet_train.model import GICnet, ModelConfig
from gicnet_train.pairs import build_pairs, split_by_trajectory
from gicnet_train.train import train_member
from gicnet_train.verdict import verdict

#: Seeds of ensemble members are cfg.seed + MEMBER_SEED_STEP * k.
MEMBER_SEED_STEP = 1000


def resolve_device(name: str) -> torch.device:
    """'auto' (CUDA if available, else CPU), 'cpu' or 'cuda'."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise InputError(f"unknown device {name!r} (use auto, cpu or cuda)")
    return torch.device(name)


def _trajectory_split(n: int, cfg: TrainConfig) -> tuple[list[int], list[int]]:
    n_val = min(max(1, round(cfg.val_fraction * n)), n - 1)
    order = np.random.default_rng(cfg.seed).permutation(n)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def fit(trajectories: list[Trajectory], out: Path, cfg: TrainConfig, n_members: int = 1,
        device: str = "auto", resume: bool = False, icdef: ICDefinition | None = None,
        sources: list[str] | None = None, progress: bool = True,
        members: list[int] | None = None,
        should_stop: Callable[[], bool] | None = None,
        init_from: Path | None = None) -> dict[str, object]:
    """Train the energy model and ``n_members`` GICnet models; returns the summary.

    ``should_stop`` is polled after every training step; when it returns True, the member
    in training saves its checkpoint (last.pt) and :class:`gicnet_runtime.errors.Interrupted`
    is raised (``resume`` continues it).

    ``members`` restricts this call to some member indices (default: all), so that
    members of one run can train in parallel processes that share its energy model:
    run once with ``members=[]`` (energy model only), then each process with
    ``resume=True, members=[k]``.  The summary lists every member finished so far.

    ``resume`` continues the run in ``out``: ``cfg`` must equal its run.json settings
    except :data:`gicnet_train.config.RESUMABLE` ones (time budget, checkpoint interval),
    whose new values apply to the rest of the run and are recorded in run.json.

    ``init_from`` (a finished run of the same molecule) fine-tunes it: member K starts from
    that run's member_K/best.pt (weights and input scaling) instead of the frozen baseline,
    with its IC definition, trajectory split and energy model; ``cfg`` gives the new
    training settings (its model settings must equal that run's).
    """
    out = Path(out)
    if (out / "run.json").exists() and not resume:
        raise InputError(f"{out} already holds a training run; pass --resume to continue it")
    if len(trajectories) < 2:
        raise InputError("training needs at least 2 trajectories (one is held for validation)")
    dev = resolve_device(device)
    todo = list(range(n_members)) if members is None else list(members)
    if any(not 0 <= k < n_members for k in todo):
        raise InputError(f"member indices must lie in 0..{n_members - 1}, got {todo}")
    train_ids, val_ids = _trajectory_split(len(trajectories), cfg)
    if init_from is not None:
        icdef = _init_icdef(Path(init_from), cfg, out, todo, val_ids)
    icdef = _run_icdef(trajectories[0], out, cfg, resume, icdef)
    _write_run(out, trajectories[0], cfg, icdef, sources, train_ids, val_ids, init_from)
    energy = _energy_model(trajectories, train_ids, val_ids, cfg, out, dev, progress)
    if dev.type == "cuda":
        # TF32 matmuls: ~1e-3 relative rounding of the network's correction term, far
        # below its target accuracy, at several times the float32 speed.
        torch.backends.cuda.matmul.allow_tf32 = True
    todo = [k for k in todo if not (out / f"member_{k}" / "final.json").exists()]
    if todo:
        pairs = build_pairs(trajectories, icdef, cfg.model.tc_fs, cfg.stride)
        train, val = split_by_trajectory(pairs, train_ids)
        del pairs  # the split holds copies; the whole set would double the memory
        on_device = (train.to(dev), val.to(dev))
        for k in todo:
            _train_one(k, trajectories[0].masses, icdef, on_device, val, cfg, out, energy, dev,
                       resume, progress, should_stop, init_from)
    summary = {"energy": ckpt.read_json(out / "energy" / "metrics.json"),
               "members": [ckpt.read_json(out / f"member_{k}" / "final.json")
                           for k in range(n_members)
                           if (out / f"member_{k}" / "final.json").exists()]}
    summary["verdict"] = verdict(summary)
    ckpt.write_json(summary, out / "summary.json")
    return summary


def _run_icdef(first: Trajectory, out: Path, cfg: TrainConfig, resume: bool,
               icdef: ICDefinition | None) -> ICDefinition:
    """The run's IC definition: the interrupted run's on resume, else given or built."""
    if resume and (out / "run.json").exists():
        run = ckpt.read_json(out / "run.json")
        changed = resume_differences(TrainConfig.from_dict(run["config"]), cfg)
        if changed:
            raise InputError("--resume with settings different from the interrupted run: "
                             + ", ".join(changed))
        return ICDefinition(tuple(tuple(r) for r in run["ic_rows"]))
    if icdef is None:
        icdef = build_icdef(first.positions[0], first.atomic_numbers, first.masses)
    if icdef.n_atoms != first.n_atoms:
        raise InputError(f"IC definition has {icdef.n_atoms} atoms, data {first.n_atoms}")
    return icdef


def _init_icdef(init_from: Path, cfg: TrainConfig, out: Path, todo: list[int],
                val_ids: list[int]) -> ICDefinition:
    """The IC definition of the run ``init_from`` that the members ``todo`` start from; its
    energy model is copied into ``out`` (InputError if that run cannot be fine-tuned: other
    settings, other validation trajectories ``val_ids``, or members missing)."""
    if not (init_from / "run.json").exists():
        raise InputError(f"--init-from {init_from} holds no training run (run.json)")
    run = ckpt.read_json(init_from / "run.json")
    before = TrainConfig.from_dict(run["config"])
    if before.model != cfg.model or before.seed != cfg.seed \
            or before.val_fraction != cfg.val_fraction:
        raise InputError(f"--init-from {init_from}: its model, seed and validation split "
                         "settings must equal this run's")
    if run["val_trajectories"] != val_ids:
        raise InputError(f"--init-from {init_from} was validated on other trajectories: give "
                         "it the same data files")
    missing = [k for k in todo if not (init_from / f"member_{k}" / "best.pt").exists()]
    if missing or not (init_from / "energy" / "model.pt").exists():
        raise InputError(f"--init-from {init_from} has no trained member(s) {missing} or no "
                         "energy model")
    if not (out / "energy" / "model.pt").exists():
        shutil.copytree(init_from / "energy", out / "energy", dirs_exist_ok=True)
    return ICDefinition(tuple(tuple(r) for r in run["ic_rows"]))


def _write_run(out: Path, first: Trajectory, cfg: TrainConfig, icdef: ICDefinition,
               sources: list[str] | None, train_ids: list[int], val_ids: list[int],
               init_from: Path | None = None) -> None:
    ckpt.write_json({"init_from": None if init_from is None else str(init_from),
                     "config": cfg.to_dict(), "ic_rows": [list(r) for r in icdef.rows],
                     "atomic_numbers": first.atomic_numbers.tolist(),
                     "masses_amu": first.masses.tolist(), "sources": sources or [],
                     "train_trajectories": train_ids, "val_trajectories": val_ids,
                     "provenance": {k: v for k, v in first.info.items()
                                    if isinstance(v, (str, int, float, bool))}},
                    out / "run.json")


def _train_one(k: int, masses, icdef: ICDefinition, on_device: tuple, val, cfg: TrainConfig,
               out: Path, energy: EnergyModel, dev: torch.device, resume: bool,
               progress: bool, should_stop: Callable[[], bool] | None = None,
               init_from: Path | None = None) -> None:
    """Train member ``k`` (seed cfg.seed + MEMBER_SEED_STEP k) on the (train, validation)
    pairs ``on_device``, from ``init_from``'s member k when given; write its final.json,
    measured on the CPU copy ``val``."""
    seed = cfg.seed + MEMBER_SEED_STEP * k
    torch.manual_seed(seed)
    train_d, val_d = on_device
    model = GICnet(icdef, masses, cfg.model).to(dev)
    model.set_scaling(train_d.q0, train_d.q0_dot, train_d.q[:, -1])
    if init_from is not None:
        model.load_state_dict(ckpt.load(Path(init_from) / f"member_{k}" / "best.pt")["model"])
    member_dir = out / f"member_{k}"
    result = train_member(model, train_d, val_d, dataclasses.replace(cfg, seed=seed), member_dir,
                          energy, resume, progress, should_stop)
    final = member_report(model.cpu(), val, icdef)
    final["seed"] = seed
    final["training"] = {k: v for k, v in result.items() if k != "history"}
    ckpt.write_json(final, member_dir / "final.json")


def _energy_model(trajectories, train_ids, val_ids, cfg, out, dev, progress) -> EnergyModel:
    path = out / "energy" / "model.pt"
    if path.exists():
        model = EnergyModel(trajectories[0].n_atoms, cfg.energy.hidden)
        model.load_state_dict(ckpt.load(path)["model"])
        return model.to(dev).requires_grad_(False)
    model, metrics = fit_energy([trajectories[i] for i in train_ids],
                                [trajectories[i] for i in val_ids], cfg.energy, cfg.seed, dev,
                                progress)
    ckpt.save({"model": model.state_dict()}, path)
    ckpt.write_json(metrics, out / "energy" / "metrics.json")
    return model.requires_grad_(False)


def member_report(model: GICnet, val, icdef: ICDefinition) -> dict[str, object]:
    """Validation errors of a trained model and of the linear baseline."""
    q, q_dot, x = predict_pairs(model, val)
    bq, bq_dot = linear_baseline(val)
    return {"validation": segment_errors(q, q_dot, x, val, icdef),
            "baseline_linear": segment_errors(bq, bq_dot, None, val, icdef)}


def load_member(out: Path, k: int = 0) -> tuple[GICnet, EnergyModel, dict]:
    """The best checkpoint of member ``k`` of a run, its energy model and run.json."""
    out = Path(out)
    run = ckpt.read_json(out / "run.json")
    cfg = TrainConfig.from_dict(run["config"])
    icdef = ICDefinition(tuple(tuple(r) for r in run["ic_rows"]))
    model = GICnet(icdef, run["masses_amu"], cfg.model)
    model.load_state_dict(ckpt.load(out / f"member_{k}" / "best.pt")["model"])
    energy = EnergyModel(icdef.n_atoms, cfg.energy.hidden)
    energy.load_state_dict(ckpt.load(out / "energy" / "model.pt")["model"])
    return model.eval(), energy.eval(), run


__all__ = ["ModelConfig", "fit", "load_member", "resolve_device"]
