"""The auxiliary energy model: potential energy (eV) from the geometry.

Inverse interatomic distances (invariant to translation and rotation) feed a GELU
MLP.  It is trained before GICnet, supplies GICnet's energy-consistency loss term
and, exported beside it, judges predictions (ensemble selection in the runtime).
"""

from __future__ import annotations

import torch
from torch import nn

from gicnet_train.mlp import MLP


class EnergyModel(nn.Module):
    """E_pot(positions) for one molecule with ``n_atoms`` atoms."""

    def __init__(self, n_atoms: int, hidden: tuple[int, ...] = (256, 128, 64)) -> None:
        super().__init__()
        i, j = torch.triu_indices(n_atoms, n_atoms, offset=1)
        self.register_buffer("pair_i", i)
        self.register_buffer("pair_j", j)
        n_pairs = i.numel()
        self.register_buffer("x_mean", torch.zeros(n_pairs))
        self.register_buffer("x_std", torch.ones(n_pairs))
        self.register_buffer("e_mean", torch.zeros(()))
        self.register_buffer("e_std", torch.ones(()))
        self.hidden = tuple(hidden)
        self.net = MLP(n_pairs, self.hidden, 1)

    def descriptor(self, positions: torch.Tensor) -> torch.Tensor:
        """(..., N, 3) Å -> (..., P) inverse distances, 1/Å."""
        d = positions.index_select(-2, self.pair_i) - positions.index_select(-2, self.pair_j)
        return 1.0 / torch.linalg.vector_norm(d, dim=-1)

    def set_scaling(self, positions: torch.Tensor, energies: torch.Tensor) -> None:
        """Input/output scaling from data: positions (M, N, 3) Å, energies (M,) eV."""
        x = self.descriptor(positions)
        self.x_mean.copy_(x.mean(0))
        self.x_std.copy_(x.std(0).clamp_min(1e-6))
        self.e_mean.copy_(energies.mean())
        self.e_std.copy_(energies.std().clamp_min(1e-6))

    def forward_columns(self, positions: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` for F frames as columns, positions (N, 3, F) Å -> (F,) eV (as
        :func:`gicnet_train.model.lab_frame_outputs_frames_last` has them): the descriptor
        (P, F) and the network's activations (width, F) keep the frames on the last axis,
        so no transpose is needed.  The distances are sqrt(sum(d * d)): onnxruntime's
        ReduceL2 over the 3 components is ~10x slower than its ReduceSum."""
        d = positions.index_select(0, self.pair_i) - positions.index_select(0, self.pair_j)
        x = 1.0 / torch.sqrt((d * d).sum(1))                          # (P, F)
        z = (x - self.x_mean[:, None]) / self.x_std[:, None]
        return self.net.forward_columns(z)[0] * self.e_std + self.e_mean

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """(..., N, 3) Å -> (...) potential energy, eV."""
        z = (self.descriptor(positions) - self.x_mean) / self.x_std
        return self.net(z).squeeze(-1) * self.e_std + self.e_mean
