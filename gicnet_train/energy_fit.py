"""Fitting the auxiliary energy model to reference potential energies."""

from __future__ import annotations

import math

import numpy as np
import torch

from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError
from gicnet_runtime.progress import progress as progress_reporter
from gicnet_train.config import EnergyTrainConfig
from gicnet_train.energy import EnergyModel


def energy_frames(trajectories: list[Trajectory], stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ``stride``-th frame: positions (M, N, 3) Å and potential energies (M,) eV."""
    if any(t.potential_energy is None for t in trajectories):
        raise InputError("training the energy model needs potential energies in every trajectory")
    pos = np.concatenate([t.positions[::stride] for t in trajectories])
    e = np.concatenate([t.potential_energy[::stride] for t in trajectories])
    return torch.tensor(pos, dtype=torch.float32), torch.tensor(e, dtype=torch.float32)


def fit_energy(train: list[Trajectory], val: list[Trajectory], cfg: EnergyTrainConfig,
               seed: int, device: torch.device, progress: bool = True
               ) -> tuple[EnergyModel, dict[str, float]]:
    """Train an EnergyModel with MSE; returns the model (best on validation) and metrics (eV)."""
    torch.manual_seed(seed)
    x, e = (a.to(device) for a in energy_frames(train, cfg.frame_stride))
    xv, ev = (a.to(device) for a in energy_frames(val, cfg.frame_stride))
    model = EnergyModel(x.shape[1], cfg.hidden).to(device)
    model.set_scaling(x, e)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-6)
    steps = cfg.epochs * math.ceil(len(x) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=cfg.lr * 1e-2)
    gen = torch.Generator().manual_seed(seed)
    best, best_state = math.inf, None
    bar = progress_reporter(cfg.epochs, "energy model", "epoch", enabled=progress, leave=False)
    for _ in range(cfg.epochs):
        for idx in torch.randperm(len(x), generator=gen).to(device).split(cfg.batch_size):
            loss = ((model(x[idx]) - e[idx]) / model.e_std).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        rmse = _rmse(model, xv, ev)
        if rmse < best:
            best = rmse
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        bar.update(1)
    bar.close()
    model.load_state_dict(best_state)
    return model, {"val_rmse_eV": best, "train_rmse_eV": _rmse(model, x, e),
                   "val_std_eV": float(ev.std())}


@torch.no_grad()
def _rmse(model: EnergyModel, x: torch.Tensor, e: torch.Tensor) -> float:
    err = torch.cat([model(xb) - eb for xb, eb in zip(x.split(4096), e.split(4096), strict=True)])
    return float(err.pow(2).mean().sqrt())
