"""One ONNX graph for a whole ensemble (format version 2, docs/onnx-contract.md).

Two ways to put M members into one file, both with outputs stacked on a leading member
axis, (M, B, K, N, 3) and (M, B, K):

* :class:`StackedEnsemble` (basis heads): the members share everything that does not
  depend on their weights, the Cartesian -> internal transform of the inputs, the basis
  at the requested times, the internal -> Cartesian conversion (run once on all M·B·K
  frames) and the run's energy model; their network weights are stacked on a member axis
  and run as batched MatMuls.  The graph has the node count of one member.
* :func:`merge_member_files` (any head, e.g. the paper's time head): the members' own
  graphs side by side, sharing only the inputs; M times the nodes.

``benchmarks/ensemble_graph.py`` measures the two against M separate sessions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gicnet_runtime.core.contract import ALL_OUTPUT_NAMES, ENERGY_T, POSITIONS_T, VELOCITIES_T
from gicnet_runtime.core.description import ENSEMBLE_FORMAT_VERSION, ModelDescription
from gicnet_runtime.errors import InputError
from gicnet_train import geometry as geo
from gicnet_train.energy import EnergyModel
from gicnet_train.mlp import gelu
from gicnet_train.model import GICnet, basis_series, features, gated, lab_frame_outputs

#: Names of the graph's outputs; every one gains the member axis.
OUTPUTS = ALL_OUTPUT_NAMES


class StackedMLP(nn.Module):
    """M GELU MLPs of one architecture run together: (M, ..., n_in) -> (M, ..., n_out)."""

    def __init__(self, mlps) -> None:
        super().__init__()
        layers = [list(m.layers) for m in mlps]
        self.n_layers = len(layers[0])
        for k in range(self.n_layers):
            # weight (M, in, out) and bias (M, 1, out): x @ W + b per member.
            self.register_buffer(f"weight_{k}",
                                 torch.stack([m[k].weight.detach().t() for m in layers]))
            self.register_buffer(f"bias_{k}",
                                 torch.stack([m[k].bias.detach()[None] for m in layers]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for k in range(self.n_layers):
            x = torch.matmul(x, getattr(self, f"weight_{k}")) + getattr(self, f"bias_{k}")
            if k < self.n_layers - 1:
                x = gelu(x)
        return x


class StackedEnsemble(nn.Module):
    """M basis-head GICnet members of one run and its energy model as one graph.

    Inputs as a member's graph; outputs ``positions_t``, ``velocities_t`` (M, B, K, N, 3)
    Å, Å/fs and ``energy_t`` (M, B, K) eV, member m's output equal to its own graph's.
    """

    def __init__(self, members: list[GICnet], energy: EnergyModel) -> None:
        super().__init__()
        check_stackable(members)
        first = members[0]
        self.icdef, self.config = first.icdef, first.config
        self.register_buffer("masses", first.masses.detach().clone())
        for name in ("q_mean", "q_std", "rate_std"):  # (M, 1, N, 3): broadcast over B
            self.register_buffer(name, torch.stack([getattr(m, name)[None] for m in members]))
        # (M, 1, 1, 3N): broadcast over B and K.
        self.register_buffer("out_scale", torch.stack([m.out_scale.flatten()[None, None]
                                                       for m in members]))
        self.net = StackedMLP([m.net for m in members])
        self.energy = energy
        self.n_members = len(members)

    def forward(self, positions: torch.Tensor, velocities: torch.Tensor, times: torch.Tensor):
        q0, q0_dot, frame = geo.to_internal(positions, velocities, self.masses, self.icdef)
        shape = (self.n_members,) + q0.shape
        x = features(q0.expand(shape), q0_dot.expand(shape), self.q_mean, self.q_std,
                     self.rate_std)                                   # (M, B, F)
        out, d_out = basis_series(self.net(x), times, self.config.n_basis,
                                  self.config.tc_fs)                  # (M, B, K, 3N)
        q, q_dot = gated(out * self.out_scale, d_out * self.out_scale, q0, q0_dot, times,
                         self.config.gate_width_fs)                   # (M, B, K, N, 3)
        return lab_frame_outputs(q, q_dot, self.icdef, frame, times, self.energy)


def check_stackable(members: list[GICnet]) -> None:
    """InputError unless the members are basis heads of one molecule and architecture."""
    if not members:
        raise InputError("an ensemble graph needs at least one member")
    first = members[0]
    if first.config.head != "basis":
        raise InputError(f"stacked ensemble graphs need basis heads, not {first.config.head!r} "
                         "(use merge_member_files)")
    for k, other in enumerate(members[1:], start=1):
        if other.config != first.config or other.icdef.rows != first.icdef.rows \
                or not torch.equal(other.masses, first.masses):
            raise InputError(f"member {k} differs from member 0 in architecture, atoms or "
                             "IC definition: it cannot share an ensemble graph")


def describe_ensemble(descriptions: list[ModelDescription]) -> ModelDescription:
    """The description of an ensemble file from its members' own descriptions: member 0's,
    with ``n_members``, each member's validation and their mean, and the members' seeds."""
    first = descriptions[0]
    member_validation = tuple(d.validation for d in descriptions)
    keys = [k for k in first.validation if all(k in v for v in member_validation)]
    mean = {k: float(np.mean([v[k] for v in member_validation])) for k in keys}
    provenance = dict(first.provenance, member=None,
                      members=[d.provenance.get("member") for d in descriptions],
                      seeds=[d.provenance.get("seed") for d in descriptions])
    return dataclasses.replace(first, n_members=len(descriptions), validation=mean,
                               member_validation=member_validation, provenance=provenance,
                               format_version=ENSEMBLE_FORMAT_VERSION)


def merge_member_files(paths: list[Path], description: ModelDescription):
    """The members' own ONNX graphs side by side in one ModelProto (outputs stacked on a
    leading member axis), described by ``description`` (see :func:`describe_ensemble`)."""
    import onnx
    from onnx import compose, helper

    protos = [onnx.load(str(p)) for p in paths]
    nodes, initializers, outputs = [], [], {name: [] for name in OUTPUTS}
    for m, proto in enumerate(protos):
        graph = compose.add_prefix_graph(proto.graph, f"m{m}_", rename_inputs=False)
        nodes += graph.node
        initializers += graph.initializer
        initializers.append(helper.make_tensor(f"m{m}_axis0", onnx.TensorProto.INT64, [1], [0]))
        for out in graph.output:
            name = out.name[len(f"m{m}_"):]
            nodes.append(helper.make_node("Unsqueeze", [out.name, f"m{m}_axis0"],
                                          [f"{out.name}_stacked"]))
            outputs[name].append(f"{out.name}_stacked")
    for name, parts in outputs.items():
        nodes.append(helper.make_node("Concat", parts, [name], axis=0))
    frames = [len(protos), "B", "K"]
    shapes = {POSITIONS_T: frames + [description.n_atoms, 3],
              VELOCITIES_T: frames + [description.n_atoms, 3], ENERGY_T: frames}
    graph = helper.make_graph(
        nodes, "gicnet_ensemble", list(protos[0].graph.input),
        [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shapes[name])
         for name in OUTPUTS], initializers)
    merged = helper.make_model(graph, opset_imports=list(protos[0].opset_import),
                               ir_version=protos[0].ir_version)
    helper.set_model_props(merged, description.to_metadata())
    merged.producer_name = protos[0].producer_name
    onnx.checker.check_model(merged, full_check=True)
    return merged
