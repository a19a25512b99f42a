"""Markdown tables for BENCHMARKS.md from one or more result files of benchmarks.speed.

    python -m benchmarks.table benchmarks/results/cpu.json [benchmarks/results/h100.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def speed_rows(results: dict, label: str) -> list[str]:
    """One row per MD baseline and per gicnet run: fs/s and ratio to ANI-1x ensemble MD."""
    ani = next((b["fs_per_s"] for b in results["baselines"]
                if b["baseline"] == "ani1x_ensemble"), None)
    rows = [f"| {label} | MD {b['baseline']} | 1 | {b['duration_fs']:g} | "
            f"{b['fs_per_s']:,.1f} | {b['fs_per_s'] / ani:.2f} |" if ani else ""
            for b in results["baselines"] if "source" not in b]
    for g in results["gicnet"]:
        ratio = f"{g['fs_per_s'] / ani:,.1f}" if ani else "n/a"
        segment = f", {g['segment_fs']:g} fs segments" if "segment_fs" in g else ""
        rows.append(f"| {label} | gicnet {g['model']} ({g['members']}{segment}) | {g['batch']} | "
                    f"{g['duration_fs']:g} | {g['fs_per_s']:,.1f} | {ratio} |")
    return [r for r in rows if r]


def hardware_rows(results: dict, label: str) -> list[str]:
    """Bare-graph throughput against the measured matmul peak."""
    hw = results["hardware"]
    peak = hw["matmul_peak_flop_per_s"]
    return [f"| {label} | {g['batch']} x {g['n_times']} | {g['frames_per_s']:,.0f} | "
            f"{g['flop_per_s'] / 1e9:,.1f} | {peak / 1e9:,.1f} | {g['flop_per_s'] / peak:.0%} |"
            for g in hw["graph_throughput"]]


def main(argv: list[str] | None = None) -> None:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    results = [(p.stem, json.loads(p.read_text())) for p in paths]
    print("| machine | engine (members) | trajectories | fs simulated | fs/s | x ANI-1x ens. |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for label, r in results:
        print("\n".join(speed_rows(r, label)))
    print("\n| machine | frames per call (B x K) | frames/s | GFLOP/s | matmul peak GFLOP/s "
          "| fraction |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for label, r in results:
        print("\n".join(hardware_rows(r, label)))


if __name__ == "__main__":
    main()
