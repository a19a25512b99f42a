"""The GICnet model: initial internal coordinates and rates plus t -> coordinates at t.

    M(t) = NN(q0, q0_dot, t) * s * f(t) + M0 + (1 - f(t)) * v0 * t,  f(t) = 1 - exp(-(t/a)^2)

with M0 = q0 and v0 = q0_dot, so M(0) = q0 and dM/dt(0) = q0_dot exactly.  The
velocities are dM/dt, computed by the MLP's hand-written tangent.  ``s`` is a
per-coordinate output scale from the data.  Dihedral outputs are continuous
(unwrapped relative to the initial value).
"""

from __future__ import annotations

import dataclasses
import json

import torch
from torch import nn

from gicnet_runtime.icdef import ICDefinition
from gicnet_train import geometry as geo
from gicnet_train.mlp import MLP

#: Floor for the standard deviations used in input/output scaling (Å, rad, Å/fs, rad/fs).
STD_FLOOR = 1e-3


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture and segment settings of one GICnet model."""

    hidden: tuple[int, ...] = (1024, 512, 256, 128, 64)
    tc_fs: float = 10.0
    gate_width_fs: float = 2.5

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        return cls(hidden=tuple(d["hidden"]), tc_fs=float(d["tc_fs"]),
                   gate_width_fs=float(d["gate_width_fs"]))


def gate(t: torch.Tensor, width_fs: float) -> tuple[torch.Tensor, torch.Tensor]:
    """f(t) = 1 - exp(-(t/a)^2) and df/dt, for t in fs."""
    u = t / width_fs
    e = torch.exp(-u * u)
    return 1.0 - e, 2.0 * u / width_fs * e


class GICnet(nn.Module):
    """One GICnet model for one molecule (fixed IC definition and masses)."""

    def __init__(self, icdef: ICDefinition, masses_amu, config: ModelConfig) -> None:
        super().__init__()
        self.icdef, self.config = icdef, config
        n = icdef.n_atoms
        self.register_buffer("masses", torch.as_tensor(masses_amu, dtype=torch.float32))
        # Scaling buffers (set from training data by set_scaling); shapes (N, 3).
        for name in ("q_mean", "q_std", "rate_std", "out_scale"):
            self.register_buffer(name, torch.ones(n, 3))
        self.n_features = 2 * n + 2 * n + 3 * n  # r, theta; sin/cos phi; rates
        self.net = MLP(self.n_features + 1, config.hidden, 3 * n)

    def set_scaling(self, q0: torch.Tensor, q0_dot: torch.Tensor, q_tc: torch.Tensor) -> None:
        """Input/output scaling from data: q0, q0_dot (M, N, 3) and q at tc (M, N, 3)."""
        self.q_mean.copy_(q0.mean(0))
        self.q_std.copy_(q0.std(0).clamp_min(STD_FLOOR))
        self.rate_std.copy_(q0_dot.std(0).clamp_min(STD_FLOOR))
        linear = q0 + q0_dot * self.config.tc_fs
        self.out_scale.copy_((q_tc - linear).std(0).clamp_min(STD_FLOOR))

    def features(self, q0: torch.Tensor, q0_dot: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) coordinates and rates -> (B, F) network inputs (without t)."""
        z = (q0 - self.q_mean) / self.q_std
        phi = q0[..., geo.DIHEDRAL]
        return torch.cat([z[..., :2].flatten(-2), torch.sin(phi), torch.cos(phi),
                          (q0_dot / self.rate_std).flatten(-2)], dim=-1)

    def internal(self, q0: torch.Tensor, q0_dot: torch.Tensor, times: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """q0, q0_dot (B, N, 3), times (B, K) fs -> q(t), q_dot(t) (B, K, N, 3)."""
        n = self.icdef.n_atoms
        first = self.net.layers[0]
        w_x, w_t = first.weight[:, :-1], first.weight[:, -1]
        tc = self.config.tc_fs
        pre = (torch.matmul(self.features(q0, q0_dot), w_x.t()) + first.bias).unsqueeze(1)
        pre = pre + (times / tc).unsqueeze(-1) * w_t
        out, d_out = self.net.forward_with_tangent(pre, w_t / tc)
        scale = self.out_scale.reshape(3 * n)
        delta, d_delta = out * scale, d_out * scale
        f, df = gate(times, self.config.gate_width_fs)
        f, df, t = f.unsqueeze(-1), df.unsqueeze(-1), times.unsqueeze(-1)
        m0, v0 = q0.flatten(-2).unsqueeze(1), q0_dot.flatten(-2).unsqueeze(1)
        q = delta * f + m0 + (1.0 - f) * v0 * t
        q_dot = d_delta * f + delta * df + (1.0 - f) * v0 - df * v0 * t
        shape = q.shape[:-1] + (n, 3)
        return q.reshape(shape), q_dot.reshape(shape)

    def forward(self, positions: torch.Tensor, velocities: torch.Tensor, times: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Lab frame in, lab frame out.

        Args:
            positions: (B, N, 3) Å; velocities: (B, N, 3) Å/fs; times: (B, K) fs in [0, tc].
        Returns:
            positions_t, velocities_t: (B, K, N, 3) Å and Å/fs, centre-of-mass motion included.
        """
        q0, q0_dot, frame = geo.to_internal(positions, velocities, self.masses, self.icdef)
        q, q_dot = self.internal(q0, q0_dot, times)
        return to_lab_frame(q, q_dot, self.icdef, frame, times)


def to_lab_frame(q: torch.Tensor, q_dot: torch.Tensor, icdef: ICDefinition, frame: geo.Frame,
                 times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q, q_dot (B, K, N, 3) in the initial frame of each row -> lab-frame positions and
    velocities (B, K, N, 3); the centre of mass moves uniformly: com0 + v_com t."""
    com_t = frame.com.unsqueeze(1) + frame.com_velocity.unsqueeze(1) * times.unsqueeze(-1)
    frame_t = geo.Frame(com_t, frame.com_velocity.unsqueeze(1).expand_as(com_t),
                        frame.rotation.unsqueeze(1))
    return geo.to_cartesian(q, q_dot, icdef, frame_t)
