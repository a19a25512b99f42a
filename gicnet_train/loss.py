"""Weighted RMSE of distances, angles, dihedrals and their rates, and of the bonds'
vibrational amplitudes."""

from __future__ import annotations

import math

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


def bond_amplitude_error(q: torch.Tensor, q_dot: torch.Tensor, q_ref: torch.Tensor,
                         q_dot_ref: torch.Tensor, weights_t: torch.Tensor, rows: torch.Tensor,
                         mean: torch.Tensor, std: torch.Tensor,
                         rate_std: torch.Tensor) -> torch.Tensor:
    """RMSE (Å) of the bonds' vibrational amplitudes over (B, K, N, 3) predictions.

    A bond of length r vibrating about its mean length r_m at angular frequency w has the
    squared amplitude A^2 = (r - r_m)^2 + (dr/dt / w)^2, which does not depend on the
    vibration's phase.  The coordinate terms are least-squares fits of r itself: where the
    phase of a fast stretch at t is uncertain, their optimum shrinks its displacement
    towards the mean (measured: the O-H stretch keeps 0.984 of it at t = tc, and the
    unrolled trajectory loses that much at every segment end).  This term asks for the
    amplitude alone, which the initial state determines far better than the phase.

    ``rows`` (P,) are the IC rows whose distance is a bond; ``mean``, ``std`` and
    ``rate_std`` (N,) are the training data's per-row mean distance, its spread and its
    rate's spread (the model's input scaling), which give r_m and w = rate_std / std.  The
    error of A^2 is divided by 2 sqrt(2) std, the derivative of A^2 at the typical
    amplitude sqrt(2) std, so the term reads in Å like the distance term.
    """
    col = geo.DISTANCE
    r_m, s, w = mean[rows], std[rows], rate_std[rows] / std[rows]

    def squared_amplitude(r: torch.Tensor, r_dot: torch.Tensor) -> torch.Tensor:
        return (r[..., rows, col] - r_m) ** 2 + (r_dot[..., rows, col] / w) ** 2

    error = (squared_amplitude(q, q_dot) - squared_amplitude(q_ref, q_dot_ref)) \
        / (2.0 * math.sqrt(2.0) * s)
    return torch.sqrt((error ** 2 * weights_t.unsqueeze(-1)).mean())


def segment_terms(model, q: torch.Tensor, q_dot: torch.Tensor, q_ref: torch.Tensor,
                  q_dot_ref: torch.Tensor, weights_t: torch.Tensor,
                  weights: LossWeights) -> dict[str, torch.Tensor]:
    """:func:`rmse_terms` of (B, K, N, 3) predictions, plus "amplitude"
    (:func:`bond_amplitude_error` on the bond rows and input scaling of ``model``, a
    :class:`gicnet_train.model.GICnet`) when ``weights.amplitude`` > 0."""
    terms = rmse_terms(q, q_dot, q_ref, q_dot_ref, weights_t)
    if weights.amplitude > 0:
        col = geo.DISTANCE
        terms["amplitude"] = bond_amplitude_error(
            q, q_dot, q_ref, q_dot_ref, weights_t, model.bond_rows, model.q_mean[:, col],
            model.q_std[:, col], model.rate_std[:, col])
    return terms


def total_loss(terms: dict[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    """Weighted sum of the RMSE terms (dimensionless)."""
    loss = sum(getattr(weights, n) * (terms[n] + weights.rate_time_fs * terms[n + "_rate"])
               for n in TERMS)
    if "amplitude" in terms:
        loss = loss + weights.amplitude * terms["amplitude"]
    if "rollout" in terms:
        loss = loss + weights.rollout * terms["rollout"]
    if "energy" in terms:
        loss = loss + weights.energy * terms["energy"]
    return loss
