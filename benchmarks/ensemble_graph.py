"""One ensemble file two ways, against the member files as separate sessions.

    python -m benchmarks.ensemble_graph [--out benchmarks/results/ensemble_graph.json]

The shipped members (``exported/ethanol/members/``) are timed per graph call, onnxruntime
CPU with one thread, K = 20 times per start (a 10 fs segment at 0.5 fs frames), for B
starts: (a) the stacked ensemble file (``exported/ethanol/ensemble.onnx``: shared input
transform, batched member MatMuls, one internal -> Cartesian conversion for all members'
frames), (b) the members' graphs side by side in one file
(:func:`gicnet_train.ensemble_graph.merge_member_files`, written to a temporary folder),
(c) one session per member file, called one after the other.  Each call is repeated for
``REPEAT_S``; the best of ``ROUNDS`` rounds is kept.  Prints ms per call and node counts.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from gicnet_runtime.core.description import ModelDescription
from gicnet_runtime.io.initial import read_initial_conditions

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "exported" / "ethanol"
STARTS = (1, 16, 256)
TIMES_PER_START = 20
REPEAT_S = 1.0
ROUNDS = 3


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _ms_per_call(sessions: list[ort.InferenceSession], feed: dict) -> float:
    best = np.inf
    for _ in range(ROUNDS):
        for s in sessions:
            s.run(None, feed)
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < REPEAT_S:
            for s in sessions:
                s.run(None, feed)
            calls += 1
        best = min(best, (time.perf_counter() - start) / calls)
    return 1e3 * best


def main() -> None:
    from gicnet_train.ensemble_graph import describe_ensemble, merge_member_files

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    members = sorted((SHIPPED / "members").glob("member_*.onnx"))
    init = read_initial_conditions(SHIPPED / "initial.extxyz")
    with tempfile.TemporaryDirectory() as tmp:
        descriptions = [ModelDescription.from_metadata(
            {q.key: q.value for q in onnx.load(m).metadata_props}) for m in members]
        side = Path(tmp) / "side_by_side.onnx"
        onnx.save(merge_member_files(members, describe_ensemble(descriptions)), str(side))
        variants = {"stacked ensemble file": [_session(SHIPPED / "ensemble.onnx")],
                    "side-by-side ensemble file": [_session(side)],
                    "member files, one session each": [_session(m) for m in members]}
        nodes = {"stacked ensemble file": len(onnx.load(SHIPPED / "ensemble.onnx").graph.node),
                 "side-by-side ensemble file": len(onnx.load(side).graph.node),
                 "member files, one session each": sum(len(onnx.load(m).graph.node)
                                                       for m in members)}
        result = {"members": len(members), "times_per_start": TIMES_PER_START,
                  "nodes": nodes, "ms_per_call": {}}
        for n_starts in STARTS:
            rows = np.arange(n_starts) % len(init.positions)
            feed = {"positions": init.positions[rows].astype(np.float32),
                    "velocities": init.velocities[rows].astype(np.float32),
                    "times": np.tile(np.linspace(0.5, 10.0, TIMES_PER_START, dtype=np.float32),
                                     (n_starts, 1))}
            result["ms_per_call"][n_starts] = {name: _ms_per_call(s, feed)
                                               for name, s in variants.items()}
            print(n_starts, {k: round(v, 3) for k, v in result["ms_per_call"][n_starts].items()})
    print("nodes", nodes)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
