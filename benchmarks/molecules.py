"""The shipped models side by side: graph size and prediction speed, ethanol against azobenzene.

    python -m benchmarks.molecules --out benchmarks/results/molecules.json

One process, one thread (onnxruntime, OpenMP, BLAS), CPU.  For every shipped model folder
(``exported/ethanol``, ``exported/azobenzene``): its atoms, members, weights and the nodes
of its ensemble graph as written and after onnxruntime's basic optimisation (what a session
runs); then ``Model.propagate`` from the model's own ``initial.extxyz`` for 1 and 256
trajectories, ``--duration-fs`` at 0.5 fs output steps with the model's default unrolling,
timed alternately between the models (so that both see the same load), median of
``--repeats``.  Speeds are fs of trajectory per wall second summed over the batch, and
predicted atom-frames per second (frames x atoms), the size-fair figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS = ("ethanol", "azobenzene")
DT_FS = 0.5


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "molecules.json")
    p.add_argument("--batches", default="1,256")
    p.add_argument("--duration-fs", type=float, default=500.0)
    p.add_argument("--repeats", type=int, default=3)
    return p.parse_args(argv)


def graph_facts(folder: Path) -> dict:
    """Atoms, members, weights and node counts of a shipped model's ensemble graph."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    path = folder / "ensemble.onnx"
    graph = onnx.load(path).graph
    weights = sum(int(np.prod(t.dims)) for t in graph.initializer)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "basic.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        run_nodes = len(onnx.load(options.optimized_model_filepath).graph.node)
    return {"file": str(path.relative_to(REPO)), "file_mb": path.stat().st_size / 1e6,
            "nodes": len(graph.node), "nodes_after_basic_optimisation": run_nodes,
            "weights": weights}


def propagate_wall(model, pos, vel, duration_fs: float) -> float:
    start = time.perf_counter()
    model.propagate(pos, vel, duration_fs, DT_FS)
    return time.perf_counter() - start


def main(argv=None) -> dict:
    args = parse_args(argv)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    from benchmarks.graph_nodes import ic_tree_depth
    from benchmarks.hardware import cpu_name
    from benchmarks.initial import batch_of, load_initial
    from gicnet_runtime import load_model

    batches = [int(b) for b in args.batches.split(",")]
    models, starts, result = {}, {}, {"machine": platform.machine(), "cpu_model": cpu_name(),
                                      "threads": 1, "duration_fs": args.duration_fs,
                                      "dt_fs": DT_FS, "models": {}}
    for name in MODELS:
        folder = REPO / "exported" / name
        models[name] = load_model(folder, device="cpu", threads=1)
        numbers, pos, vel = load_initial(folder / "initial.extxyz")
        starts[name] = {b: batch_of(pos, vel, b) for b in batches}
        result["models"][name] = {"atoms": int(len(numbers)), **graph_facts(folder),
                                  "members": models[name].n_members,
                                  "ic_tree_depth":
                                  ic_tree_depth(models[name].description.ic_rows),
                                  "speed": {}}
    for b in batches:
        walls = {name: [] for name in MODELS}
        propagate_wall(models[MODELS[0]], *starts[MODELS[0]][b], 2 * args.duration_fs / 100)
        for _ in range(args.repeats):
            for name in MODELS:
                walls[name].append(propagate_wall(models[name], *starts[name][b],
                                                  args.duration_fs))
        for name in MODELS:
            wall = statistics.median(walls[name])
            atoms = result["models"][name]["atoms"]
            frames = b * (round(args.duration_fs / DT_FS) + 1)
            result["models"][name]["speed"][str(b)] = {
                "wall_s": wall, "walls_s": walls[name], "fs_per_s": b * args.duration_fs / wall,
                "atom_frames_per_s": frames * atoms / wall}
    result["load_avg_1min_at_end"] = os.getloadavg()[0]
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    return result


def table(result: dict) -> str:
    """A markdown table of the result (BENCHMARKS.md)."""
    batches = list(next(iter(result["models"].values()))["speed"])
    head = ("| model | atoms | members | weights | nodes (run) | IC depth | "
            + " | ".join(f"{b} traj. fs/s | {b} traj. atom-frames/s" for b in batches) + " |")
    lines = [head, "|" + " --- |" * (6 + 2 * len(batches))]
    for name, m in result["models"].items():
        speeds = " | ".join(f"{m['speed'][b]['fs_per_s']:.0f} | "
                            f"{m['speed'][b]['atom_frames_per_s']:.3g}" for b in batches)
        lines.append(f"| {name} | {m['atoms']} | {m['members']} | {m['weights']:,} | "
                     f"{m['nodes']} ({m['nodes_after_basic_optimisation']}) | "
                     f"{m['ic_tree_depth']} | {speeds} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
