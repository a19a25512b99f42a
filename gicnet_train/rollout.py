"""A loss over two chained segments: the second starts from the model's own prediction.

An unrolled trajectory starts every segment from the previous segment's predicted state at
t = tc, converted to Cartesians and back to internal coordinates in its own body frame (the
exported graph does the same).  The single-segment terms never see that state as an input,
so errors that only grow across boundaries (energy flowing between modes over many segments)
cost nothing in them.  :func:`rollout_term` runs the model a second time from the predicted
end state and scores it against the reference pair that starts tc later on the same
trajectory (:func:`gicnet_train.pairs.successors`), with the same coordinate, rate and
amplitude terms; gradients flow through both segments.
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
    """The weighted coordinate, rate and amplitude RMSE terms of the segment that starts
    from the predicted end states q_end, q_dot_end (B, N, 3), against the pairs
    ``following`` (B,) that start where they end; weights_t (K,) over the target times.
    Dimensionless, on the scale of :func:`gicnet_train.loss.total_loss` without energy."""
    q1, q1_dot = restart(q_end, q_dot_end, model.masses, model.icdef,
                         pairs.q0[following][..., geo.DIHEDRAL])
    times = pairs.times.expand(len(following), -1)
    q, q_dot = model.internal(q1, q1_dot, times)
    q_ref, q_dot_ref = pairs.q[following], pairs.q_dot[following]
    w = weights_t.expand(len(following), -1)
    return total_loss(segment_terms(model, q, q_dot, q_ref, q_dot_ref, w, weights), weights)
