"""benchmarks/dispatch.py: the chain it times is really N nodes, and the budget's arithmetic."""

from __future__ import annotations

import numpy as np

from benchmarks import dispatch


def test_chain_adds_its_constant_once_per_node():
    """The timed chain runs every one of its nodes (optimisations off): 0.5 added N times."""
    session = dispatch._chain_session(37, (1, 9, 3), threads=1)
    (out,) = session.run(None, {"x": np.full((1, 9, 3), 2.0, np.float32)})
    np.testing.assert_array_equal(out, np.full((1, 9, 3), 2.0 + 37 * 0.5, np.float32))


def test_budget_is_calls_times_nodes_times_floor_and_the_segment_share_of_md():
    floor = [{"per_node_s": 3e-7}]
    calls = {"calls_s": {"a": 4e-4, "b": 5e-4, "c": 7e-4}, "nodes_in_session": 1000,
             "segment_graph_s": 1.6e-3}
    got = dispatch.budget(floor, calls, md_fs_per_s=80.0, ratio=300.0, segment_fs=10.0)
    assert got["floor_s"] == 3 * 1000 * 3e-7
    assert np.isclose(got["floor_fraction"], 0.9e-3 / 1.6e-3)
    # 300 x 80 fs/s = 24,000 fs/s: a 10 fs segment in 1/2400 s.
    assert np.isclose(got["segment_budget_s"], 10.0 / 24000.0)
    assert "segment_budget_s" not in dispatch.budget(floor, calls, md_fs_per_s=None)
