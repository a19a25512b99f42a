"""The GICnet training loop: AdamW, cosine schedule, validation every epoch, best
checkpoint kept, and exact resume after interruption (even SIGKILL).

Resume is exact because nothing random is left to chance: the epoch's batch order
comes from (seed, epoch), the learning rate is a pure function of the step, and the
last checkpoint (model, optimiser, epoch, batch, step) is written atomically every
``checkpoint_every_s`` seconds and at each epoch's end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from gicnet_runtime.errors import Diverged, Interrupted
from gicnet_runtime.progress import progress as progress_reporter
from gicnet_runtime.units import AMU_A2_PER_FS2_IN_EV
from gicnet_train import checkpoint as ckpt
from gicnet_train import geometry as geo
from gicnet_train.config import TrainConfig
from gicnet_train.energy import EnergyModel
from gicnet_train.loss import segment_terms, time_weights, total_loss
from gicnet_train.model import GICnet, to_lab_frame
from gicnet_train.pairs import Pairs, successors
from gicnet_train.rollout import chained, rollout_term


def learning_rate(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from cfg.lr to cfg.lr_min."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    x = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + math.cos(math.pi * x))


def kinetic_energy(velocities: torch.Tensor, masses: torch.Tensor) -> torch.Tensor:
    """(..., N, 3) Å/fs, (N,) amu -> (...) eV."""
    return 0.5 * (masses * velocities.pow(2).sum(-1)).sum(-1) * AMU_A2_PER_FS2_IN_EV


def saturated(error: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale`` tanh(error / scale): the error itself where small, bounded by ``scale``
    (with a vanishing gradient) where large; ``scale`` 0: the error unchanged."""
    return scale * torch.tanh(error / scale) if scale > 0 else error


def batch_terms(model: GICnet, pairs: Pairs, idx: torch.Tensor, cfg: TrainConfig,
                energy: EnergyModel | None, time_idx: torch.Tensor | None = None,
                energy_rows: int = 0, following: torch.Tensor | None = None,
                rollout_rows: int = 0) -> dict[str, torch.Tensor]:
    """RMSE terms (and the energy-consistency term) on the pairs ``idx``, at the target
    times ``time_idx`` (B, K') of each pair (default: all K); the energy term on the first
    ``energy_rows`` pairs of ``idx`` (0: all); the chained second segment's term
    ("rollout", when ``cfg.weights.rollout`` > 0) on those pairs of ``idx`` that have a
    successor in ``following`` (:func:`gicnet_train.pairs.successors` of ``pairs``), the
    first ``rollout_rows`` of them (0: all)."""
    every_time = time_idx is None
    w = time_weights(pairs.times, cfg.time_weighting)
    if every_time:  # rows gathered whole: cheaper than indexing by (row, time)
        times, w = pairs.times.expand(len(idx), -1), w.expand(len(idx), -1)
        q_ref, q_dot_ref = pairs.q[idx], pairs.q_dot[idx]
    else:
        rows = idx.unsqueeze(1)
        times, w = pairs.times[time_idx], w[time_idx]
        q_ref, q_dot_ref = pairs.q[rows, time_idx], pairs.q_dot[rows, time_idx]
    q, q_dot = model.internal(pairs.q0[idx], pairs.q0_dot[idx], times)
    terms = segment_terms(model, q, q_dot, q_ref, q_dot_ref, w, cfg.weights)
    if following is not None and cfg.weights.rollout > 0:
        _add_rollout(terms, model, pairs, idx, following, cfg,
                     (q, q_dot) if every_time else None, rollout_rows)
    if energy is not None and cfg.weights.energy > 0:
        some = slice(None, energy_rows or None)
        p0, v0 = pairs.positions0[idx[some]], pairs.velocities0[idx[some]]
        _, _, frame = geo.to_internal(p0, v0, model.masses, model.icdef)
        # Every energy_time_stride-th time (the last of 20 included): the energy model runs on
        # B x K frames while the basis head's network runs on B rows, so the energy term
        # would otherwise cost several times the rest of the step.
        sub = slice(cfg.energy_time_stride - 1, None, cfg.energy_time_stride)
        if times.shape[1] < cfg.energy_time_stride:
            sub = slice(None)
        x, v = to_lab_frame(q[some, sub], q_dot[some, sub], model.icdef, frame,
                            times[some, sub])
        e0 = energy(p0) + kinetic_energy(v0, model.masses)
        e_t = energy(x) + kinetic_energy(v, model.masses)
        terms["energy"] = torch.sqrt(saturated(e_t - e0.unsqueeze(1),
                                               cfg.energy_saturation_ev).pow(2).mean())
    return terms


def _add_rollout(terms: dict[str, torch.Tensor], model: GICnet, pairs: Pairs, idx: torch.Tensor,
                 following: torch.Tensor, cfg: TrainConfig,
                 predicted: tuple[torch.Tensor, torch.Tensor] | None, rows: int = 0) -> None:
    """terms["rollout"] from the first ``rows`` (0: all) pairs of ``idx`` with
    ``cfg.rollout_segments`` successors;
    ``predicted``: q, q_dot of all of ``idx`` at all K target times (the last is tc), else
    predicted here at tc."""
    nxt = chained(following, idx, cfg.rollout_segments)
    keep = (nxt >= 0).all(0)
    if rows:
        keep &= torch.cumsum(keep, 0) <= rows
    if not bool(keep.any()):
        return
    if predicted is not None:
        q_end, q_dot_end = predicted[0][keep, -1], predicted[1][keep, -1]
    else:
        rows = idx[keep]
        q_end, q_dot_end = model.internal(pairs.q0[rows], pairs.q0_dot[rows],
                                          pairs.times[-1:].expand(len(rows), 1))
        q_end, q_dot_end = q_end[:, 0], q_dot_end[:, 0]
    terms["rollout"] = rollout_term(model, pairs, q_end, q_dot_end, nxt[:, keep], cfg.weights,
                                    time_weights(pairs.times, cfg.time_weighting))


def sample_times(n: int, k: int, cfg: TrainConfig, epoch: int, batch: int,
                 device: torch.device) -> torch.Tensor | None:
    """(n, times_per_pair) random target-time indices, reproducible from (seed, epoch, batch)."""
    if cfg.times_per_pair <= 0 or cfg.times_per_pair >= k:
        return None
    gen = torch.Generator().manual_seed((cfg.seed * 100_003 + epoch) * 1_000_003 + batch)
    return torch.rand(n, k, generator=gen).argsort(1)[:, :cfg.times_per_pair].to(device)


@torch.no_grad()
def validate(model: GICnet, pairs: Pairs, cfg: TrainConfig, energy: EnergyModel | None,
             batch_size: int = 1024) -> dict[str, float]:
    """Mean-square-combined RMSE terms and loss over all validation pairs (the rollout
    term over the batches that have it, weighted by their size)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    following = successors(pairs, cfg.stride) if cfg.weights.rollout > 0 else None
    for idx in torch.arange(len(pairs), device=pairs.q0.device).split(batch_size):
        terms = batch_terms(model, pairs, idx, cfg, energy, following=following)
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + float(value) ** 2 * len(idx)
            counts[name] = counts.get(name, 0) + len(idx)
    terms = {name: math.sqrt(s / counts[name]) for name, s in sums.items()}
    terms["loss"] = float(total_loss(terms, cfg.weights))
    return terms


def clip_gradient(model: torch.nn.Module, max_norm: float) -> float:
    """The gradient's total norm; scaled down to ``max_norm`` when larger (0: left as is)."""
    limit = max_norm if max_norm > 0 else math.inf
    return float(torch.nn.utils.clip_grad_norm_(model.parameters(), limit))


def diverged_message(terms: dict[str, torch.Tensor], epoch: int, batch: int, n_batches: int,
                     out: Path) -> str:
    """One line: where the training loss became non-finite, its terms, what to change."""
    values = ", ".join(f"{name} {float(v):.3g}" for name, v in terms.items())
    return (f"training diverged in epoch {epoch + 1}, step {batch + 1} of {n_batches}: the "
            f"loss is not finite ({values}); {out} keeps its last good checkpoints. Lower the "
            "learning rate (lr) or the energy weight (weights.energy), or set grad_clip")


def planned_epochs(done: int, trained_s: float, budget_s: float, planned: int,
                   max_epochs: int) -> int:
    """Epochs to run in all under a time budget, re-planned after every epoch: those done,
    plus as many more as the remaining budget holds at the mean epoch time so far; never
    more than ``max_epochs`` nor fewer than those done.  In the schedule's first half the
    plan may grow (a slow first epoch, or a load that went away, would otherwise leave
    budget unused); in its second half it only shortens, so the learning rate's decay is
    never undone.  The budget counts the training loop, not loading data or building
    pairs."""
    more = int(max(budget_s - trained_s, 0.0) // (trained_s / done))
    cap = max_epochs if 2 * done <= planned else planned
    return max(done, min(cap, done + more))


def train_member(model: GICnet, train: Pairs, val: Pairs, cfg: TrainConfig, out: Path,
                 energy: EnergyModel | None = None, resume: bool = False,
                 progress: bool = True,
                 should_stop: Callable[[], bool] | None = None) -> dict[str, object]:
    """Train one model into ``out`` (last.pt, best.pt, history.json); returns the best and
        last validation losses, the best epoch, the epochs run and the history.

    ``should_stop``: polled after every step; True saves last.pt and raises
    :class:`gicnet_runtime.errors.Interrupted`."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = {"epoch": 0, "batch": 0, "step": 0, "best_loss": math.inf, "best_epoch": 0,
             "history": [], "epochs": cfg.epochs, "stopped_early": False}
    if resume and (out / "last.pt").exists():
        saved = ckpt.load(out / "last.pt")
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimizer"])
        state = saved["progress"]
    n_batches = math.ceil(len(train) / cfg.batch_size)
    following = successors(train, cfg.stride) if cfg.weights.rollout > 0 else None
    mark = time.monotonic()

    def trained_s() -> float:
        """Seconds spent in the training loop so far, summed over interruptions (kept in
        ``state``)."""
        nonlocal mark
        now = time.monotonic()
        state["train_s"] = state.get("train_s", 0.0) + now - mark
        mark = now
        return state["train_s"]

    def save_last() -> None:
        trained_s()
        ckpt.save({"model": model.state_dict(), "optimizer": optimiser.state_dict(),
                   "progress": state}, out / "last.pt")

    while (epoch := state["epoch"]) < state["epochs"]:
        total_steps = state["epochs"] * n_batches
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(
            cfg.seed * 100_003 + epoch)).to(train.q0.device)
        batches = order.split(cfg.batch_size)
        bar = progress_reporter(n_batches, f"{out.name} epoch {epoch + 1}", "step",
                                enabled=progress, leave=False)
        bar.update(state["batch"])
        grads = state.setdefault("grads", {"max": 0.0, "clipped": 0})
        last_save = time.monotonic()
        for b in range(state["batch"], n_batches):
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(state["step"], total_steps, cfg)
            terms = batch_terms(model, train, batches[b], cfg, energy,
                                sample_times(len(batches[b]), len(train.times), cfg, epoch, b,
                                             train.q0.device), cfg.energy_rows, following,
                                cfg.rollout_rows)
            loss = total_loss(terms, cfg.weights)
            if not torch.isfinite(loss):
                raise Diverged(diverged_message(terms, epoch, b, n_batches, out))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            norm = clip_gradient(model, cfg.grad_clip)
            grads["max"], grads["clipped"] = max(grads["max"], norm), \
                grads["clipped"] + (0 < cfg.grad_clip < norm)
            optimiser.step()
            state["step"] += 1
            state["batch"] = b + 1
            bar.set_postfix(loss=f"{loss.item():.4f}", r=f"{terms['distance'].item():.4f}",
                            a=f"{terms['angle'].item():.4f}", d=f"{terms['dihedral'].item():.4f}")
            bar.update(1)
            if time.monotonic() - last_save > cfg.checkpoint_every_s:
                save_last()
                last_save = time.monotonic()
            if should_stop is not None and should_stop():
                save_last()
                raise Interrupted(f"interrupted in epoch {epoch + 1}, step {b + 1} of "
                                  f"{n_batches}; {out / 'last.pt'} holds it: run the same "
                                  "command with --resume to continue")
        bar.close()
        metrics = validate(model, val, cfg, energy)
        state["history"].append({"epoch": epoch + 1, **metrics, "grad_norm_max": grads["max"],
                                 "clipped_steps": grads["clipped"]})
        del state["grads"]
        if metrics["loss"] < state["best_loss"]:
            state["best_loss"], state["best_epoch"] = metrics["loss"], epoch + 1
            ckpt.save({"model": model.state_dict()}, out / "best.pt")
        state["epoch"], state["batch"] = epoch + 1, 0
        if cfg.time_budget_s > 0:
            state["epochs"] = planned_epochs(epoch + 1, trained_s(), cfg.time_budget_s,
                                             state["epochs"], cfg.epochs)
        if cfg.patience > 0 and epoch + 1 - state["best_epoch"] >= cfg.patience:
            state["epochs"], state["stopped_early"] = epoch + 1, True
        save_last()
        ckpt.write_json(state["history"], out / "history.json")
        if progress:
            tqdm.write(f"{out.name} epoch {epoch + 1}/{state['epochs']}: "
                       f"val loss {metrics['loss']:.5f} "
                       f"bond {metrics['distance']:.5f} A angle {metrics['angle']:.5f} rad "
                       f"dihedral {metrics['dihedral']:.5f} rad")
    best = ckpt.load(out / "best.pt")
    model.load_state_dict(best["model"])
    return {"best_val_loss": state["best_loss"], "best_epoch": state.get("best_epoch"),
            "epochs_run": state["epoch"], "stopped_early": state.get("stopped_early", False),
            "last_val_loss": state["history"][-1]["loss"], "history": state["history"]}
