"""A GELU multilayer perceptron with a hand-written forward-mode tangent.

The model's velocities are the exact time derivative of the network.  torch.onnx
cannot export ``autograd.grad`` and ``torch.autograd.forward_ad`` exports wrong
tangents, so the tangent is propagated explicitly, layer by layer, as plain tensor
algebra that exports as ordinary ONNX nodes.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def gelu(x: torch.Tensor) -> torch.Tensor:
    """Exact (erf) GELU: torch's, which exports as the node pattern (x / sqrt 2, Erf, ...)
    that onnxruntime fuses into one Gelu kernel."""
    return torch.nn.functional.gelu(x)


def gelu_derivative(x: torch.Tensor) -> torch.Tensor:
    """d gelu / dx = Phi(x) + x phi(x)."""
    return 0.5 * (1.0 + torch.erf(x * _INV_SQRT2)) + x * torch.exp(-0.5 * x * x) * _INV_SQRT_2PI


class MLP(nn.Module):
    """Linear layers with GELU between them; ``hidden`` lists the hidden widths."""

    def __init__(self, n_in: int, hidden: tuple[int, ...], n_out: int) -> None:
        super().__init__()
        widths = (n_in, *hidden, n_out)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for k, layer in enumerate(self.layers):
            x = layer(x)
            if k < len(self.layers) - 1:
                x = gelu(x)
        return x

    def forward_columns(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` on inputs as columns, (n_in, F) -> (n_out, F): W x + b."""
        for k, layer in enumerate(self.layers):
            x = torch.matmul(layer.weight, x) + layer.bias[:, None]
            if k < len(self.layers) - 1:
                x = gelu(x)
        return x

    def forward_with_tangent(self, pre: torch.Tensor, pre_tangent: torch.Tensor
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the network from the first layer's pre-activation ``pre`` (..., H1) and its
        tangent (broadcastable to ``pre``); return output and output tangent (..., n_out).

        Starting from the pre-activation lets callers build the first layer cheaply
        (e.g. once per initial condition plus a term linear in t).
        """
        x, dx = pre, pre_tangent
        for layer in self.layers[1:]:
            dx = gelu_derivative(x) * dx
            x = gelu(x)
            x = layer(x)
            dx = torch.matmul(dx, layer.weight.t())
        return x, dx
