"""The GICnet model: initial internal coordinates and rates plus t -> coordinates at t.

    M(t) = D(t) * s * f(t) + M0 + (1 - f(t)) * v0 * t,  f(t) = 1 - exp(-(t/a)^2)

with M0 = q0 and v0 = q0_dot, so M(0) = q0 and dM/dt(0) = q0_dot exactly, and the
velocities are the exact dM/dt.  ``s`` is a per-coordinate output scale from the data.
Two heads give the correction D(t):

* ``"basis"`` (default): D(t) = sum_k c_k phi_k(t), where the MLP maps the initial
  state once to coefficients c (3N x K) and phi_k are Chebyshev polynomials T_k of
  x = 2 t / tc - 1.  One network pass per initial condition serves every requested
  time; dD/dt is the analytic derivative of the basis.  Chebyshev polynomials are
  bounded by 1 on [0, tc] and well conditioned under uniform sampling (unlike
  monomials), and converge spectrally for the smooth motion within a segment.
* ``"time"`` (the paper's): D(t) = NN(q0, q0_dot, t / tc), one network pass per time;
  dD/dt comes from the MLP's hand-written forward-mode tangent.

Dihedral outputs are continuous (unwrapped relative to the initial value).
"""

from __future__ import annotations

import torch
from torch import nn

from gicnet_runtime.core.icdef import ICDefinition
from gicnet_runtime.core.internal import bond_rows
from gicnet_train import geometry as geo

# The settings live with the other training settings (torch-free, for the command line).
from gicnet_train.config import DEFAULT_HIDDEN, DEFAULT_N_BASIS, ModelConfig  # noqa: F401
from gicnet_train.mlp import MLP

#: Floor for the standard deviations used in input/output scaling (Å, rad, Å/fs, rad/fs).
STD_FLOOR = 1e-3


def chebyshev(x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """T_0..T_{n-1} at x and their derivatives dT_k/dx, each (..., n).

    Recurrences T_{k+1} = 2x T_k - T_{k-1} and T'_{k+1} = 2 T_k + 2x T'_k - T'_{k-1};
    a static Python loop over k, so the graph exports to plain ONNX nodes.
    """
    if torch.onnx.is_in_onnx_export():
        return chebyshev_stacked(x, n)
    one = torch.ones_like(x)
    values, slopes = [one, x], [torch.zeros_like(x), one]
    for _ in range(2, n):
        values.append(2.0 * x * values[-1] - values[-2])
        slopes.append(2.0 * values[-2] + 2.0 * x * slopes[-1] - slopes[-2])
    return torch.stack(values[:n], dim=-1), torch.stack(slopes[:n], dim=-1)


def chebyshev_stacked(x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`chebyshev` as exported: each T_k and T'_k kept together, z_k = (T_k, T'_k)
    (..., 2, 1), so one step of both recurrences is z_(k+1) = 2x z_k + (0, 2 T_k) - z_(k-1):
    5 graph nodes where the two recurrences and their stacking take 8, with the same float
    numbers (the additions in the order of :func:`chebyshev`'s)."""
    x = x[..., None, None]                                    # (..., 1, 1)
    two_x = 2.0 * x
    select = torch.tensor([[0.0], [2.0]], dtype=x.dtype, device=x.device)  # (0, 2 T_k)
    one = 1.0 + 0.0 * x
    z = [torch.cat([one, 0.0 * x], dim=-2), torch.cat([x, one], dim=-2)]
    for _ in range(2, n):
        z.append(two_x * z[-1] + select * z[-1][..., :1, :] - z[-2])
    both = torch.cat(z[:n], dim=-1)                            # (..., 2, n)
    return both[..., 0, :], both[..., 1, :]


def gate(t: torch.Tensor, width_fs: float) -> tuple[torch.Tensor, torch.Tensor]:
    """f(t) = 1 - exp(-(t/a)^2) and df/dt, for t in fs."""
    u = t / width_fs
    e = torch.exp(-u * u)
    return 1.0 - e, 2.0 * u / width_fs * e


def features(q0: torch.Tensor, q0_dot: torch.Tensor, q_mean: torch.Tensor, q_std: torch.Tensor,
             rate_std: torch.Tensor) -> torch.Tensor:
    """Network inputs (..., F): scaled distances and angles, sin and cos of the dihedrals,
    scaled rates, from q0, q0_dot (..., N, 3) and the scaling (N, 3) of a model."""
    z = (q0 - q_mean) / q_std
    phi = q0[..., geo.DIHEDRAL]
    return torch.cat([z[..., :2].flatten(-2), torch.sin(phi), torch.cos(phi),
                      (q0_dot / rate_std).flatten(-2)], dim=-1)


def basis_series(coef: torch.Tensor, times: torch.Tensor, n_basis: int, tc_fs: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """D(t) = sum_k c_k T_k(2t/tc - 1) and dD/dt from coefficients (..., B, 3N * n_basis)
    (per coordinate, n_basis consecutive entries) at times (B, K) fs -> (..., B, K, 3N)."""
    coef = coef.unflatten(-1, (-1, n_basis)).transpose(-1, -2)  # (..., B, n_basis, 3N)
    phi, dphi_dx = chebyshev(2.0 * times / tc_fs - 1.0, n_basis)  # (B, K, n_basis)
    return torch.matmul(phi, coef), torch.matmul(dphi_dx * (2.0 / tc_fs), coef)


def gated(delta: torch.Tensor, d_delta: torch.Tensor, q0: torch.Tensor, q0_dot: torch.Tensor,
          times: torch.Tensor, width_fs: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The gate M(t) = delta f + q0 + (1 - f) q0_dot t and its exact time derivative.

    delta, d_delta: (..., B, K, 3N), the scaled correction and its rate; q0, q0_dot:
    (B, N, 3); times: (B, K) fs -> q(t), q_dot(t) (..., B, K, N, 3)."""
    f, df = gate(times, width_fs)
    f, df, t = f.unsqueeze(-1), df.unsqueeze(-1), times.unsqueeze(-1)
    m0, v0 = q0.flatten(-2).unsqueeze(-2), q0_dot.flatten(-2).unsqueeze(-2)
    q = delta * f + m0 + (1.0 - f) * v0 * t
    q_dot = d_delta * f + delta * df + (1.0 - f) * v0 - df * v0 * t
    return q.unflatten(-1, (-1, 3)), q_dot.unflatten(-1, (-1, 3))


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
        # The rows whose distance is a bond between real atoms (not saved: the IC
        # definition gives them).
        self.register_buffer("bond_rows", torch.as_tensor(bond_rows(icdef)), persistent=False)
        self.n_features = 2 * n + 2 * n + 3 * n  # r, theta; sin/cos phi; rates
        if config.head == "basis":
            self.net = MLP(self.n_features, config.hidden, 3 * n * config.n_basis)
            # Start as the frozen baseline M0 + v0 t: random coefficients of T_k with
            # k up to ~16 would start with rate errors ~k^2 times the output scale.
            nn.init.zeros_(self.net.layers[-1].weight)
            nn.init.zeros_(self.net.layers[-1].bias)
        else:
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
        return features(q0, q0_dot, self.q_mean, self.q_std, self.rate_std)

    def correction(self, q0: torch.Tensor, q0_dot: torch.Tensor, times: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's D(t) and dD/dt, unscaled: (B, K, 3N) for times (B, K) fs."""
        if self.config.head == "basis":
            return self._basis_correction(q0, q0_dot, times)
        return self._time_correction(q0, q0_dot, times)

    def _basis_correction(self, q0, q0_dot, times):
        """One MLP pass per row: coefficients (B, 3N * n_basis), then the basis at each time."""
        coef = self.net(self.features(q0, q0_dot))
        return basis_series(coef, times, self.config.n_basis, self.config.tc_fs)

    def _time_correction(self, q0, q0_dot, times):
        """The paper's head: the MLP (and its tangent) at every time."""
        first = self.net.layers[0]
        w_x, w_t = first.weight[:, :-1], first.weight[:, -1]
        tc = self.config.tc_fs
        pre = (torch.matmul(self.features(q0, q0_dot), w_x.t()) + first.bias).unsqueeze(1)
        pre = pre + (times / tc).unsqueeze(-1) * w_t
        return self.net.forward_with_tangent(pre, w_t / tc)

    def internal(self, q0: torch.Tensor, q0_dot: torch.Tensor, times: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """q0, q0_dot (B, N, 3), times (B, K) fs -> q(t), q_dot(t) (B, K, N, 3)."""
        out, d_out = self.correction(q0, q0_dot, times)
        scale = self.out_scale.flatten()
        return gated(out * scale, d_out * scale, q0, q0_dot, times, self.config.gate_width_fs)

    def forward(self, positions: torch.Tensor, velocities: torch.Tensor, times: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Lab frame in, lab frame out.

        Args:
            positions: (B, N, 3) Å; velocities: (B, N, 3) Å/fs; times: (B, K) fs in [0, tc].
        Returns:
            positions_t, velocities_t: (B, K, N, 3) Å and Å/fs, centre-of-mass motion included.
        """
        q, q_dot, frame = self.internal_from_lab(positions, velocities, times)
        return to_lab_frame(q, q_dot, self.icdef, frame, times)

    def internal_from_lab(self, positions: torch.Tensor, velocities: torch.Tensor,
                          times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, geo.Frame]:
        """Lab-frame starts (B, N, 3) and times (B, K) fs -> q(t), q_dot(t) (B, K, N, 3) in
        each start's initial body frame, and that frame (what :meth:`forward` converts back)."""
        q0, q0_dot, frame = geo.to_internal(positions, velocities, self.masses, self.icdef)
        q, q_dot = self.internal(q0, q0_dot, times)
        return q, q_dot, frame


def to_lab_frame(q: torch.Tensor, q_dot: torch.Tensor, icdef: ICDefinition, frame: geo.Frame,
                 times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q, q_dot (B, K, N, 3) in the initial frame of each row -> lab-frame positions and
    velocities (B, K, N, 3); the centre of mass moves uniformly: com0 + v_com t."""
    com_t = frame.com.unsqueeze(1) + frame.com_velocity.unsqueeze(1) * times.unsqueeze(-1)
    frame_t = geo.Frame(com_t, frame.com_velocity.unsqueeze(1).expand_as(com_t),
                        frame.rotation.unsqueeze(1))
    return geo.to_cartesian(q, q_dot, icdef, frame_t)


def lab_frame_outputs(q: torch.Tensor, q_dot: torch.Tensor, icdef: ICDefinition,
                      frame: geo.Frame, times: torch.Tensor, energy
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A graph's three outputs from q, q_dot (..., B, K, N, 3) (``...``: none, or the
    members): lab-frame positions and velocities (..., B, K, N, 3) as :func:`to_lab_frame`
    and the energy model's energies (..., B, K) eV.  In an ONNX export the conversion runs
    frames last (:func:`lab_frame_outputs_frames_last`)."""
    if torch.onnx.is_in_onnx_export():
        return lab_frame_outputs_frames_last(q, q_dot, icdef, frame, times, energy)
    pos_t, vel_t = to_lab_frame(q, q_dot, icdef, frame, times)
    return pos_t, vel_t, energy(pos_t)


def lab_frame_outputs_frames_last(q: torch.Tensor, q_dot: torch.Tensor, icdef: ICDefinition,
                                  frame: geo.Frame, times: torch.Tensor, energy
                                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`lab_frame_outputs` with every frame-wise step on (N, 3, F) (``geo.FRAMES_LAST``;
    the F frames in the order (..., K, B)): the internal -> Cartesian conversion, the
    rotation back into the lab frame and the centre of mass (per start, spread over the
    frames once) and the energy model (:meth:`EnergyModel.forward_columns`).  Equal to
    :func:`lab_frame_outputs` up to float rounding (the rotation is summed in its own
    order, not by MatMul).

    Each way, q and the positions are moved by a swap of whole rows (B <-> K) and one 2-D
    transpose, which onnxruntime runs ~4x faster than a single 5-D transpose.  Shapes are
    static or taken from tensors (reshape_as, broadcasting), never from traced sizes,
    which the exporter would freeze into the graph."""
    n, n3 = icdef.n_atoms, 3 * icdef.n_atoms
    rows, rows_dot = q.transpose(-3, -4), q_dot.transpose(-3, -4)   # (..., K, B, N, 3)

    def frames_last(x):  # (..., K, B, N, 3) -> (N, 3, F)
        return x.reshape(-1, n3).t().reshape(n, 3, -1)

    def atoms_last(x):  # (N, 3, F) -> (..., B, K, N, 3)
        return x.reshape(n3, -1).t().reshape_as(rows).transpose(-3, -4)

    pos, vel = geo.internal_to_cartesian(frames_last(rows), frames_last(rows_dot), icdef,
                                         geo.FRAMES_LAST)
    # Per-start values spread over the frames: (B, ...) -> (..., F).
    grid = times.t() + 0.0 * rows[..., :1, :1, 0, 0]              # (..., K, B): t
    zero, extra = 0.0 * grid, (None,) * (grid.dim() - 1)

    def per_frame(x, shape):  # x (B, *shape) -> (*shape, F)
        starts_last = x.permute(list(range(1, x.dim())) + [0])
        return (starts_last[(Ellipsis,) + extra + (slice(None),)] + zero).reshape(shape + (-1,))

    rotation = per_frame(frame.rotation, (3, 3))    # (3_j, 3_i, F): R[j, i]
    com, com_velocity = per_frame(frame.com, (3,)), per_frame(frame.com_velocity, (3,))
    t = grid.reshape(-1)                                          # (F,)
    # y_i = sum_j R[j, i] x_j: rotate(x, R^T), R into the dummy-point frame.
    pos = (pos.unsqueeze(2) * rotation).sum(1) + (com + com_velocity * t)
    vel = (vel.unsqueeze(2) * rotation).sum(1) + com_velocity
    energies = energy.forward_columns(pos).reshape_as(grid).transpose(-1, -2)
    return atoms_last(pos), atoms_last(vel), energies
