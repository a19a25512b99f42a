"""One trajectory's floor: onnxruntime's cost per graph node, and what it leaves of a segment.

    python -m benchmarks.dispatch [--threads 1] [--out FILE]

A single trajectory is latency-bound: every segment is a few graph calls on tiny tensors,
one after another.  This measures, in one process and on the CPU provider:

* **the per-node floor**: a chain of ``CHAIN_NODES`` Add nodes on a tensor the size of one
  ethanol frame (1 x 9 x 3 floats) and of one call's frames (2 x 20 x 9 x 3), with
  onnxruntime's graph optimisations off (so the chain stays a chain), minus the same call
  with one node: onnxruntime's own cost of running a node, with next to no arithmetic;
* **the shipped graph**: its node count (as a session runs it) and the time of the calls a
  segment of one trajectory makes (1 row at the 2 times of the time-reversal correction's
  forward leg, M rows at its one backward time, 1 row at the segment's 20 frame times);
* **the budget**: a segment of ``segment_fs`` at ``ratio`` times an MD engine's fs/s must
  take at most segment_fs / (ratio x fs/s) seconds in all.

``floor_fraction`` says how much of the segment's graph time the per-node floor alone
explains (calls x nodes x floor).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.hardware import best_seconds_per_call

#: Nodes in the measured chain.
CHAIN_NODES = 1000
#: Shapes of the chain's tensor: one frame of ethanol; one call's frames (2 members x 20).
CHAIN_SHAPES = ((1, 9, 3), (2, 20, 9, 3))
#: An IR version and opset every onnxruntime >= 1.16 reads.
_IR_VERSION, _OPSET = 8, 17
#: The shipped ethanol model's segment, fs.
SEGMENT_FS = 10.0


def _chain_session(n_nodes: int, shape: tuple[int, ...], threads: int):
    import onnx.helper as oh
    import onnxruntime as ort
    from onnx import TensorProto

    names = ["x"] + [f"y{i}" for i in range(n_nodes)]
    nodes = [oh.make_node("Add", [a, "c"], [b]) for a, b in zip(names, names[1:])]
    graph = oh.make_graph(nodes, "chain", [oh.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                      shape)],
                          [oh.make_tensor_value_info(names[-1], TensorProto.FLOAT, shape)],
                          [oh.make_tensor("c", TensorProto.FLOAT, [1], [0.5])])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", _OPSET)],
                          ir_version=_IR_VERSION)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def node_floor(threads: int = 1) -> list[dict]:
    """Per tensor shape: seconds per call of the chain and of one node, and per node."""
    rows = []
    for shape in CHAIN_SHAPES:
        x = {"x": np.zeros(shape, np.float32)}
        long, short = (_chain_session(n, shape, threads) for n in (CHAIN_NODES, 1))
        t_long = best_seconds_per_call(lambda: long.run(None, x))
        t_short = best_seconds_per_call(lambda: short.run(None, x))
        rows.append({"shape": list(shape), "chain_nodes": CHAIN_NODES,
                     "chain_call_s": t_long, "one_node_call_s": t_short,
                     "per_node_s": (t_long - t_short) / (CHAIN_NODES - 1)})
    return rows


def segment_calls(model_path: Path, initial_extxyz: Path, threads: int = 1,
                  frames: int = 20) -> dict:
    """The shipped graph's node count (after a session's optimisation) and the seconds of
    the three calls of one trajectory's corrected segment."""
    import onnx
    import onnxruntime as ort

    from benchmarks.initial import load_initial

    with tempfile.TemporaryDirectory() as tmp:
        optimised = Path(tmp) / "optimised.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.optimized_model_filepath = str(optimised)
        options.log_severity_level = 3  # saving the optimised graph warns; it is only counted
        session = ort.InferenceSession(str(model_path), options,
                                       providers=["CPUExecutionProvider"])
        nodes = len(onnx.load(str(optimised)).graph.node)
    members = int(session.get_modelmeta().custom_metadata_map.get("gicnet.n_members", 1))
    _, pos, vel = load_initial(initial_extxyz)
    pos, vel = pos[:1].astype(np.float32), vel[:1].astype(np.float32)

    def call(rows: int, times: np.ndarray) -> float:
        feed = {"positions": np.repeat(pos, rows, 0), "velocities": np.repeat(vel, rows, 0),
                "times": np.tile(times.astype(np.float32), (rows, 1))}
        return best_seconds_per_call(lambda: session.run(None, feed))

    calls = {"forward_1x2": call(1, np.array([0.0, SEGMENT_FS])),
             "backward_Mx1": call(members, np.array([SEGMENT_FS])),
             "main_1x20": call(1, np.linspace(SEGMENT_FS / frames, SEGMENT_FS, frames))}
    return {"file": str(model_path), "nodes_in_session": nodes, "members": members,
            "calls_s": calls, "segment_graph_s": sum(calls.values())}


def budget(floor: list[dict], calls: dict, md_fs_per_s: float | None, ratio: float = 300.0,
           segment_fs: float = SEGMENT_FS) -> dict:
    """What the floor leaves of a segment at ``ratio`` x an MD engine's ``md_fs_per_s``."""
    per_node = floor[0]["per_node_s"]
    floor_s = len(calls["calls_s"]) * calls["nodes_in_session"] * per_node
    out = {"per_node_s": per_node, "calls": len(calls["calls_s"]),
           "floor_s": floor_s, "floor_fraction": floor_s / calls["segment_graph_s"]}
    if md_fs_per_s:
        out.update(ratio=ratio, md_fs_per_s=md_fs_per_s,
                   segment_budget_s=segment_fs / (ratio * md_fs_per_s))
    return out


def dispatch_report(model_path: Path, initial_extxyz: Path, threads: int = 1,
                    md_fs_per_s: float | None = None) -> dict:
    floor = node_floor(threads)
    calls = segment_calls(model_path, initial_extxyz, threads)
    return {"method": "chain of Add nodes, graph optimisations off, minus one node; the "
                      "shipped file's three calls of a corrected segment at B = 1",
            "node_floor": floor, "segment": calls,
            "budget": budget(floor, calls, md_fs_per_s)}


def lines(report: dict) -> list[str]:
    seg, b = report["segment"], report["budget"]
    out = [f"onnxruntime per-node floor, {r['shape']}: {r['per_node_s'] * 1e6:.2f} us per node "
           f"({r['chain_nodes']} nodes {r['chain_call_s'] * 1e3:.3f} ms, one node "
           f"{r['one_node_call_s'] * 1e6:.1f} us)" for r in report["node_floor"]]
    out.append(f"shipped graph: {seg['nodes_in_session']} nodes in a session; one trajectory's "
               "segment calls " + ", ".join(f"{k} {v * 1e3:.3f} ms"
                                            for k, v in seg["calls_s"].items())
               + f" = {seg['segment_graph_s'] * 1e3:.3f} ms; the per-node floor alone "
               f"{b['floor_s'] * 1e3:.3f} ms ({b['floor_fraction']:.0%})")
    if "segment_budget_s" in b:
        out.append(f"{b['ratio']:g}x an MD engine at {b['md_fs_per_s']:.1f} fs/s leaves "
                   f"{b['segment_budget_s'] * 1e3:.3f} ms per 10 fs segment, all included")
    return out


def main(argv: list[str] | None = None) -> dict:
    from gicnet_runtime.core.model import DEFAULT_MODEL_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--md-fs-per-s", type=float, default=None,
                        help="an MD engine's speed for the budget (e.g. ANI-1x ensemble MD)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    report = dispatch_report(DEFAULT_MODEL_DIR / "ensemble.onnx",
                             DEFAULT_MODEL_DIR / "initial.extxyz", args.threads,
                             args.md_fs_per_s)
    print("\n".join(lines(report)))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
