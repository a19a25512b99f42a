"""Errors of predicted segments against reference trajectories.

Bonds, angles and dihedrals are the rows' coordinates that involve real atoms only
(the first rows' coordinates relative to the dummy points describe orientation,
not chemistry, and are reported apart as ``orientation``).  Cartesian RMSD is taken
in the lab frame, without alignment, so orientation errors count too.
"""

from __future__ import annotations

import torch

from gicnet_runtime.core.icdef import ICDefinition
from gicnet_train import geometry as geo
from gicnet_train.model import GICnet, to_lab_frame
from gicnet_train.pairs import Pairs


def chemical_masks(icdef: ICDefinition) -> dict[str, torch.Tensor]:
    """(N, 3) boolean masks selecting bonds, angles, dihedrals and orientation coordinates."""
    rows = torch.tensor(icdef.rows)
    real = rows >= 0
    bond = torch.zeros(icdef.n_atoms, 3, dtype=torch.bool)
    bond[:, geo.DISTANCE] = real[:, 1]
    angle = torch.zeros_like(bond)
    angle[:, geo.ANGLE] = real[:, 1] & real[:, 2]
    dihedral = torch.zeros_like(bond)
    dihedral[:, geo.DIHEDRAL] = real[:, 1:].all(1)
    return {"bond": bond, "angle": angle, "dihedral": dihedral,
            "orientation": ~(bond | angle | dihedral)}


def linear_baseline(pairs: Pairs) -> tuple[torch.Tensor, torch.Tensor]:
    """The "freeze at M0 + v0 t" prediction: q0 + q0_dot t and constant rates (B, K, N, 3)."""
    t = pairs.times.reshape(1, -1, 1, 1)
    q = pairs.q0.unsqueeze(1) + pairs.q0_dot.unsqueeze(1) * t
    return q, pairs.q0_dot.unsqueeze(1).expand_as(q)


@torch.no_grad()
def predict_pairs(model: GICnet, pairs: Pairs, batch_size: int = 1024
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Model predictions for every pair: q, q_dot (M, K, N, 3) and lab positions (M, K, N, 3)."""
    qs, qds, xs = [], [], []
    device = next(model.parameters()).device
    for idx in torch.arange(len(pairs)).split(batch_size):
        p0, v0 = pairs.positions0[idx].to(device), pairs.velocities0[idx].to(device)
        times = pairs.times.to(device).expand(len(idx), -1)
        q0, q0_dot, frame = geo.to_internal(p0, v0, model.masses, model.icdef)
        q, q_dot = model.internal(q0, q0_dot, times)
        x, _ = to_lab_frame(q, q_dot, model.icdef, frame, times)
        qs.append(q.cpu())
        qds.append(q_dot.cpu())
        xs.append(x.cpu())
    return torch.cat(qs), torch.cat(qds), torch.cat(xs)


def segment_errors(q: torch.Tensor, q_dot: torch.Tensor, positions: torch.Tensor | None,
                   pairs: Pairs, icdef: ICDefinition) -> dict[str, object]:
    """RMSE over all pairs and times (0, tc] per coordinate class (Å, rad, Å/fs, rad/fs),
    the same per target time (lists), and lab-frame Cartesian RMSD (Å) at tc."""
    out: dict[str, object] = {}
    for name, mask in chemical_masks(icdef).items():
        if not mask.any():
            continue
        err = (q - pairs.q)[..., mask]
        rate = (q_dot - pairs.q_dot)[..., mask]
        out[f"{name}_rmse"] = float(err.pow(2).mean().sqrt())
        out[f"{name}_rate_rmse"] = float(rate.pow(2).mean().sqrt())
        out[f"{name}_rmse_by_time"] = err.pow(2).mean(dim=(0, 2)).sqrt().tolist()
    if positions is not None:
        msd = (positions - pairs.positions).pow(2).sum(-1).mean(-1)  # (M, K)
        out["cartesian_rmsd_at_tc_A"] = float(msd[:, -1].mean().sqrt())
        out["cartesian_rmsd_by_time_A"] = msd.mean(0).sqrt().tolist()
    out["times_fs"] = pairs.times.tolist()
    return out
