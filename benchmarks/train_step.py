"""Seconds per training step of the shipped recipe, split by the energy-consistency term.

    python -m benchmarks.train_step --out benchmarks/results/train_step.json [--steps 60]

One process, one torch thread, the ethanol recipe's settings (recipes/ethanol_model.json)
on its first ``--train`` training trajectories, batch 256 starts x all 20 target times.
Variants, timed alternately in the same process (so that they see the same load): the
energy term on every row of the batch (the previous recipe), on ``energy_rows`` rows, and
without the energy term; plus one validation pass over ``--train`` trajectories' pairs.
The energy term's cost is the Cartesian conversion (placed level by level, value and
rate) and the energy model's pass and their backward: many small operations, so it
scales with the number of operations more than with the number of rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "ethanol" / "train"
RECIPE = REPO / "recipes" / "ethanol_model.json"
#: Variant name -> (energy weight kept?, energy_rows, cross products as in the exported
#: graph (gathers) instead of torch.linalg.cross, as training did before 2026-12-07).
VARIANTS = {"energy term, all 256 rows": (True, 0, False),
            "energy term, all 256 rows, cross products as gathers": (True, 0, True),
            "energy term, 64 rows": (True, 64, False),
            "energy term, 32 rows": (True, 32, False), "no energy term": (False, 0, False)}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=60, help="timed steps per variant and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--train", type=int, default=4)
    return p.parse_args(argv)


def setup(n_traj: int):
    """(model, energy model, pairs, recipe config) on the first ``n_traj`` trajectories."""
    import torch

    from gicnet_runtime.io.formats import read_trajectories
    from gicnet_train.config import config_from_dict
    from gicnet_train.energy import EnergyModel
    from gicnet_train.icbuild import build_icdef
    from gicnet_train.model import GICnet
    from gicnet_train.pairs import build_pairs

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = config_from_dict(json.loads(RECIPE.read_text())["train"])
    trajs = read_trajectories(sorted(DATA.glob("*.h5"))[:n_traj])
    first = trajs[0]
    icdef = build_icdef(first.positions[0], first.atomic_numbers, first.masses)
    pairs = build_pairs(trajs, icdef, cfg.model.tc_fs, cfg.stride)
    model = GICnet(icdef, first.masses, cfg.model)
    model.set_scaling(pairs.q0, pairs.q0_dot, pairs.q[:, -1])
    energy = EnergyModel(first.n_atoms, cfg.energy.hidden).requires_grad_(False)
    return model, energy, pairs, cfg


def time_steps(model, energy, pairs, cfg, keep_energy: bool, rows: int, steps: int,
               gathers: bool = False) -> float:
    """Mean seconds per AdamW step (forward, backward, update) over ``steps`` batches;
    ``gathers``: cross products by :func:`gicnet_train.geometry.cross_gathers`."""
    import torch

    from gicnet_train import geometry
    from gicnet_train.loss import total_loss
    from gicnet_train.train import batch_terms

    if not keep_energy:
        cfg = dataclasses.replace(cfg, weights=dataclasses.replace(cfg.weights, energy=0.0))
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(1)
    cross = geometry._cross
    geometry._cross = geometry.cross_gathers if gathers else cross
    try:
        start = time.perf_counter()
        for _ in range(steps):
            idx = torch.randint(0, len(pairs), (cfg.batch_size,), generator=gen)
            loss = total_loss(batch_terms(model, pairs, idx, cfg, energy, None, rows),
                              cfg.weights)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        return (time.perf_counter() - start) / steps
    finally:
        geometry._cross = cross


def main(argv=None) -> dict:
    args = parse_args(argv)
    from benchmarks.hardware import cpu_name
    from gicnet_train.train import validate

    model, energy, pairs, cfg = setup(args.train)
    time_steps(model, energy, pairs, cfg, True, 0, 5)  # warm-up
    times = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, (keep, rows, gathers) in VARIANTS.items():
            times[name].append(time_steps(model, energy, pairs, cfg, keep, rows, args.steps,
                                          gathers))
    start = time.perf_counter()
    validate(model, pairs, cfg, energy)
    validation_s = time.perf_counter() - start
    result = {"machine": platform.processor() or platform.machine(),
              "cpu_model": cpu_name(), "load_avg_1min_at_end": os.getloadavg()[0],
              "threads": 1, "batch_size": cfg.batch_size, "pairs": len(pairs),
              "s_per_step_median": {n: statistics.median(v) for n, v in times.items()},
              "s_per_step_rounds": times, "validation_s_per_pair": validation_s / len(pairs)}
    args.out.write_text(json.dumps(result, indent=1))
    full = result["s_per_step_median"]["energy term, all 256 rows"]
    print("| variant | s/step | vs all rows |\n| --- | ---: | ---: |")
    for name, s in result["s_per_step_median"].items():
        print(f"| {name} | {s:.4f} | {s / full:.2f} |")
    print(f"validation: {1e6 * result['validation_s_per_pair']:.1f} us per pair "
          f"(load {result['load_avg_1min_at_end']:.2f})")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
