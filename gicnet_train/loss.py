"""Weighted RMSE of distances, angles, dihedrals and their rates."""

from __future__ import annotations

import torch

from gicnet_train import geometry as geo
from gicnet_train.config import LossWeights

TERMS = ("distance", "angle", "dihedral")


def time_weights(times: torch.Tensor, scheme: str) -> torch.Tensor:
    """(K,) weights with mean 1: 'uniform', or 'linear' (growing with t, as errors do)."""
    if scheme == "uniform":
        return torch.ones_like(times)
    if scheme == "linear":
        return times / times.mean()
    raise ValueError(f"unknown time weighting {scheme!r}")


def rmse_terms(q: torch.Tensor, q_dot: torch.Tensor, q_ref: torch.Tensor,
               q_dot_ref: torch.Tensor, weights_t: torch.Tensor) -> dict[str, torch.Tensor]:
    """RMSE per coordinate type over (B, K, N, 3) predictions; weights_t (B, K) over times."""
    w = weights_t.unsqueeze(-1)
    out = {}
    for col, name in zip((geo.DISTANCE, geo.ANGLE, geo.DIHEDRAL), TERMS, strict=True):
        out[name] = torch.sqrt(((q[..., col] - q_ref[..., col]) ** 2 * w).mean())
        out[name + "_rate"] = torch.sqrt(((q_dot[..., col] - q_dot_ref[..., col]) ** 2 * w).mean())
    return out


def total_loss(terms: dict[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    """Weighted sum of the RMSE terms (dimensionless)."""
    loss = sum(getattr(weights, n) * (terms[n] + weights.rate_time_fs * terms[n + "_rate"])
               for n in TERMS)
    if "energy" in terms:
        loss = loss + weights.energy * terms["energy"]
    return loss
