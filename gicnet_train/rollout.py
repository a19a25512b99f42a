"""A loss over chained segments: each after the first starts from the model's own prediction.

An unrolled trajectory starts every segment from the previous segment's predicted state at
t = tc, converted to Cartesians and back to internal coordinates in its own body frame (the
exported graph does the same).  The single-segment terms never see that state as an input,
so errors that only grow across boundaries (energy flowing between modes over many segments)
cost nothing in them.  :func:`rollout_term` runs the model a second time from the predicted
end state and scores it against the reference pair that starts tc later on the same
trajectory (:func:`gicnet_train.pairs.successors`), with the same coordinate, rate and
amplitude terms; gradients flow through every segment.  With more than one chained segment
(``rollout_segments``) each starts from the previous one's predicted end, as in an unroll
of that many boundaries, and the term is the mean of the segments' losses.
"""

from __future__ import annotations

import torch

from gicnet_train import geometry as geo
from gicnet_train.config import LossWeights
from gicnet_train.loss import segment_terms, total_loss


def restart(q_end: torch.Tensor, q_dot_end: torch.Tensor, masses: torch.Tensor, icdef,
            dihedral_near: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The next segment's initial internal coordinates and rates (B, N, 3) from a predicted
    end state q_end, q_dot_end (B, N, 3) in the previous segment's body frame: through
    Cartesians into the end state's own body frame, dihedrals shifted by multiples of 2 pi
    to lie nearest ``dihedral_near`` (B, N) rad (the reference's, so that both continue from
    the same branch)."""
    positions, velocities = geo.internal_to_cartesian(q_end, q_dot_end, icdef)
    q, q_dot, _ = geo.to_internal(positions, velocities, masses, icdef)
    phi = geo.unwrap_dihedral(q[..., geo.DIHEDRAL], dihedral_near)
    return torch.cat([q[..., :geo.DIHEDRAL], phi.unsqueeze(-1)], dim=-1), q_dot


def rollout_term(model, pairs, q_end: torch.Tensor, q_dot_end: torch.Tensor,
                 following: torch.Tensor, weights: LossWeights,
                 weights_t: torch.Tensor) -> torch.Tensor:
    """The weighted coordinate, rate and amplitude RMSE terms of the segments chained from
    the predicted end states q_end, q_dot_end (B, N, 3): ``following`` (B,) are the pairs
    that start where they end, or (S, B) those of S chained segments (row s + 1 starts where
    row s ends), each segment started from the previous one's predicted end; the mean of
    the segments' losses.  weights_t (K,) over the target times.  Dimensionless, on the
    scale of :func:`gicnet_train.loss.total_loss` without energy."""
    chain = following.reshape(-1, following.shape[-1])
    losses = []
    for nxt in chain:
        q1, q1_dot = restart(q_end, q_dot_end, model.masses, model.icdef,
                             pairs.q0[nxt][..., geo.DIHEDRAL])
        times = pairs.times.expand(len(nxt), -1)
        q, q_dot = model.internal(q1, q1_dot, times)
        q_ref, q_dot_ref = pairs.q[nxt], pairs.q_dot[nxt]
        w = weights_t.expand(len(nxt), -1)
        losses.append(total_loss(segment_terms(model, q, q_dot, q_ref, q_dot_ref, w, weights),
                                 weights))
        q_end, q_dot_end = q[:, -1], q_dot[:, -1]
    return torch.stack(losses).mean()


def chained(following: torch.Tensor, idx: torch.Tensor, segments: int) -> torch.Tensor:
    """(segments, len(idx)): for each pair of ``idx`` the pairs that start tc, 2 tc, ...
    later on its trajectory (``following`` = :func:`gicnet_train.pairs.successors`), -1
    from where the trajectory ends."""
    rows = [following[idx]]
    for _ in range(segments - 1):
        prev = rows[-1]
        rows.append(torch.where(prev >= 0, following[prev.clamp(min=0)], prev))
    return torch.stack(rows)
