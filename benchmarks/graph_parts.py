"""Where one call of an exported graph spends its time, by part of the computation.

    python -m benchmarks.graph_parts [--out benchmarks/results/graph_parts.json]

Splits the nodes of the graph that an onnxruntime session runs (after its optimisations) by
what they compute, read off the graph's wiring:

* **per start**: nodes that do not depend on the ``times`` input (the start's internal
  coordinates and frame, the network, the time head's coefficients);
* **positions**: the remaining ancestors of ``positions_t`` (time basis, gate, the
  internal -> Cartesian conversion, the rotation back into the lab frame);
* **velocities**: the remaining ancestors of ``velocities_t`` (their exact time derivative);
* **energy**: the remaining ancestors of ``energy_t`` (the energy model's descriptor and
  network on every frame).

For each call shape it reports the nodes per part, the summed kernel time per part from
onnxruntime's profiler, and the call's wall time without the profiler (best of several
rounds).  The call shapes are those of one trajectory's segment (1 x 2 and 2 x 1 for the
time-reversal correction's two legs, 1 x 21 for the frames) and one CPU chunk of a large
batch (48 x 21: the runtime cuts calls at ``CPU_CHUNK_FRAMES`` member frames).  1 thread.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
from pathlib import Path

import numpy as np

from benchmarks import hardware
from benchmarks.initial import load_initial

PARTS = ("per start", "positions", "velocities", "energy", "other")
#: (rows B, times K) per call.
CALLS = ((1, 2), (2, 1), (1, 21), (48, 21))
FILES = ("exported/ethanol/ensemble.onnx", "exported/ethanol/members/member_0.onnx")
INITIAL = "exported/ethanol/initial.extxyz"
PROFILED_CALLS = 30


def node_parts(graph) -> dict[str, str]:
    """Each node's part (``PARTS``) in an ONNX GraphProto, by the wiring from the ``times``
    input and to the ``positions_t``, ``velocities_t`` and ``energy_t`` outputs."""
    producer = {out: node for node in graph.node for out in node.output}

    def ancestors(output: str) -> set[str]:
        seen, stack = set(), [output]
        while stack:
            node = producer.get(stack.pop())
            if node is not None and node.name not in seen:
                seen.add(node.name)
                stack.extend(node.input)
        return seen

    timed, timed_values = set(), {"times"}
    for node in graph.node:  # topological order: a node after all it reads
        if timed_values.intersection(node.input):
            timed.add(node.name)
            timed_values.update(node.output)
    positions, velocities = ancestors("positions_t"), ancestors("velocities_t")
    energy = ancestors("energy_t")
    parts = {}
    for node in graph.node:
        name = node.name
        parts[name] = ("per start" if name not in timed else "positions" if name in positions
                       else "velocities" if name in velocities else "energy" if name in energy
                       else "other")
    return parts


def split_call(path: str | Path, n_batch: int, n_times: int, initial, threads: int = 1,
               calls: int = PROFILED_CALLS) -> dict:
    """Nodes and profiled kernel time per part of ``calls`` calls of B x K, and the wall time
    of one call without the profiler.  initial: (positions, velocities) (B0, N, 3)."""
    pos, vel = (np.resize(x, (n_batch, *x.shape[1:])).astype(np.float32) for x in initial)
    times = np.tile(np.linspace(0.0, 10.0, n_times, dtype=np.float32), (n_batch, 1))
    feed = {"positions": pos, "velocities": vel, "times": times}
    providers = ["CPUExecutionProvider"]
    plain = hardware.open_session(path, providers, threads)
    wall_s = hardware.best_seconds_per_call(lambda: plain.run(None, feed))

    def drive(session) -> None:
        for _ in range(calls):
            session.run(None, feed)

    node_us, _, graph = hardware.profiled_kernels(path, providers, threads, drive,
                                                  optimised=True)
    parts = node_parts(graph)
    kernel_us = collections.Counter()
    for name, us in node_us.items():
        kernel_us[parts.get(name, "other")] += us / calls
    nodes = collections.Counter(parts.values())
    total = sum(kernel_us.values()) or 1.0
    return {"file": str(path), "batch": n_batch, "n_times": n_times,
            "wall_us_per_call": wall_s * 1e6, "kernel_us_per_call": total,
            "nodes": {p: nodes.get(p, 0) for p in PARTS},
            "kernel_us": {p: kernel_us.get(p, 0.0) for p in PARTS},
            "kernel_fraction": {p: kernel_us.get(p, 0.0) / total for p in PARTS}}


def markdown(rows: list[dict]) -> list[str]:
    head = " | ".join(f"{p}: nodes, kernel share" for p in PARTS[:-1])
    lines = [f"| file | B x K | wall µs per call | kernel µs (profiled) | {head} |",
             "| --- | --- | ---: | ---: |" + " ---: |" * (len(PARTS) - 1)]
    for r in rows:
        cells = " | ".join(f"{r['nodes'][p]}, {r['kernel_fraction'][p]:.0%}"
                           for p in PARTS[:-1])
        lines.append(f"| {Path(r['file']).name} | {r['batch']} x {r['n_times']} | "
                     f"{r['wall_us_per_call']:,.0f} | {r['kernel_us_per_call']:,.0f} | "
                     f"{cells} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None, help="JSON file to write")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    _, positions, velocities = load_initial(INITIAL)
    load_at_start = os.getloadavg()[0]
    rows = [split_call(f, b, k, (positions, velocities), args.threads)
            for f in FILES for b, k in CALLS]
    result = {"cpu": hardware.cpu_name(), "python": platform.python_version(),
              "threads": args.threads, "load_at_start": load_at_start,
              "load_at_end": os.getloadavg()[0], "rows": rows}
    print("\n".join(markdown(rows)))
    if any(r["nodes"]["other"] for r in rows):
        print("nodes outside the four parts:", {r["file"]: r["nodes"]["other"] for r in rows})
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
