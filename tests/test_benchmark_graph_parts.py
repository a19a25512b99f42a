"""benchmarks/graph_parts.py: nodes are put in the part whose output they feed, and a node
that does not read ``times`` (directly or through others) is per start."""

from __future__ import annotations

import pytest

from benchmarks import graph_parts

onnx = pytest.importorskip("onnx")
helper = onnx.helper


def _graph():
    f = onnx.TensorProto.FLOAT
    nodes = [
        helper.make_node("Add", ["positions", "velocities"], ["start"], name="start"),
        helper.make_node("Mul", ["start", "times"], ["x"], name="place"),
        helper.make_node("Identity", ["x"], ["positions_t"], name="pos_out"),
        helper.make_node("Mul", ["x", "velocities"], ["v"], name="derivative"),
        helper.make_node("Identity", ["v"], ["velocities_t"], name="vel_out"),
        helper.make_node("ReduceSum", ["x"], ["energy_t"], name="energy"),
        helper.make_node("Neg", ["start"], ["unused"], name="dangling"),
    ]
    inputs = [helper.make_tensor_value_info(n, f, None) for n in
              ("positions", "velocities", "times")]
    outputs = [helper.make_tensor_value_info(n, f, None) for n in
               ("positions_t", "velocities_t", "energy_t", "unused")]
    return helper.make_graph(nodes, "g", inputs, outputs)


def test_each_node_goes_to_the_part_it_feeds():
    parts = graph_parts.node_parts(_graph())
    assert parts == {"start": "per start", "place": "positions", "pos_out": "positions",
                     "derivative": "velocities", "vel_out": "velocities",
                     "energy": "energy", "dangling": "per start"}


def test_the_shipped_ensemble_has_no_node_outside_the_four_parts():
    graph = onnx.load("exported/ethanol/ensemble.onnx").graph
    parts = graph_parts.node_parts(graph)
    assert len(parts) == len(graph.node)
    assert set(parts.values()) == {"per start", "positions", "velocities", "energy"}
