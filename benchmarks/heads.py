"""Time head against basis head, and the basis head's K and width, at one CPU budget.

    python -m benchmarks.heads --out benchmarks/results/heads.json [--budget-s 300]
        [--parallel 2] [--only NAME ...]

Every variant trains one member on the same data (the first ``--train`` trajectories of
the ethanol recipe's train split, the next ``--val`` for validation), with one torch
thread and the same wall-clock budget (``--budget-s``: training stops at the first
step past it; validation and set-up are not counted), the same loss without the energy
term, and the recipe's optimiser settings.  Reported: seconds per step (batch
``--batch-size`` starts x all 20 target times), epochs reached, and the 0-10 fs
validation RMSE of bonds, angles, dihedrals and the Cartesian RMSD at 10 fs, with the
frozen baseline M0 + v0 t.  ``--parallel 2`` runs two variants at once (one per core);
both see the same load.  Results: JSON to ``--out`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "ethanol" / "train"
#: name -> ModelConfig overrides.
VARIANTS = {
    "time (paper)": {"head": "time"},
    "basis K=8": {"n_basis": 8},
    "basis K=16": {"n_basis": 16},
    "basis K=32": {"n_basis": 32},
    "basis K=16, 512-256-128": {"n_basis": 16, "hidden": (512, 256, 128)},
    "basis K=16, 256-128-64": {"n_basis": 16, "hidden": (256, 128, 64)},
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--budget-s", type=float, default=300.0)
    p.add_argument("--train", type=int, default=8)
    p.add_argument("--val", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--only", nargs="*", default=None, help="variant names (default: all)")
    p.add_argument("--variant", default=None, help=argparse.SUPPRESS)  # worker mode
    return p.parse_args(argv)


def run_variant(name: str, args) -> dict:
    """Train one variant for the budget; its timings and validation errors."""
    import torch

    from gicnet_runtime.io.formats import read_trajectories
    from gicnet_train.config import TrainConfig
    from gicnet_train.fit import member_report
    from gicnet_train.icbuild import build_icdef
    from gicnet_train.loss import total_loss
    from gicnet_train.model import GICnet, ModelConfig
    from gicnet_train.pairs import build_pairs, split_by_trajectory
    from gicnet_train.train import batch_terms, learning_rate

    torch.set_num_threads(1)
    files = sorted(DATA.glob("*.h5"))[: args.train + args.val]
    trajs = read_trajectories(files)
    first = trajs[0]
    icdef = build_icdef(first.positions[0], first.atomic_numbers, first.masses)
    cfg = TrainConfig(model=ModelConfig(**VARIANTS[name]), lr=args.lr,
                      batch_size=args.batch_size, times_per_pair=0)
    cfg = dataclasses.replace(cfg, weights=dataclasses.replace(cfg.weights, energy=0.0))
    pairs = build_pairs(trajs, icdef, cfg.model.tc_fs, cfg.stride)
    train, val = split_by_trajectory(pairs, list(range(args.train)))
    torch.manual_seed(0)
    model = GICnet(icdef, first.masses, cfg.model)
    model.set_scaling(train.q0, train.q0_dot, train.q[:, -1])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_batches = math.ceil(len(train) / cfg.batch_size)
    # The schedule assumes the step count measured on the first 20 steps fills the budget.
    steps, spent, total_steps = 0, 0.0, None
    gen = torch.Generator().manual_seed(0)
    while spent < args.budget_s:
        for idx in torch.randperm(len(train), generator=gen).split(cfg.batch_size):
            start = time.perf_counter()
            for group in opt.param_groups:
                group["lr"] = learning_rate(steps, total_steps or 10**9, cfg)
            loss = total_loss(batch_terms(model, train, idx, cfg, None), cfg.weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            spent += time.perf_counter() - start
            steps += 1
            if steps == 20:
                total_steps = max(cfg.warmup_steps + 1, int(args.budget_s / (spent / 20)))
            if spent >= args.budget_s:
                break
    report = member_report(model.eval(), val, icdef)
    keys = ("bond_rmse", "angle_rmse", "dihedral_rmse", "cartesian_rmsd_at_tc_A")
    return {"name": name, "config": {k: list(v) if isinstance(v, tuple) else v
                                     for k, v in dataclasses.asdict(cfg.model).items()},
            "parameters": sum(p.numel() for p in model.parameters()),
            "s_per_step": spent / steps, "steps": steps, "epochs": steps / n_batches,
            "n_train_pairs": len(train), "n_val_pairs": len(val),
            "validation": {k: report["validation"][k] for k in keys},
            "baseline": {k: report["baseline_linear"][k] for k in keys[:3]}}


def table(rows: list[dict]) -> str:
    lines = ["| variant | parameters | s/step | epochs | bond Å | angle rad | dihedral rad "
             "| RMSD@10 fs Å |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        v = r["validation"]
        lines.append(f"| {r['name']} | {r['parameters']:,} | {r['s_per_step']:.3f} | "
                     f"{r['epochs']:.1f} | {v['bond_rmse']:.4f} | {v['angle_rmse']:.4f} | "
                     f"{v['dihedral_rmse']:.4f} | {v['cartesian_rmsd_at_tc_A']:.3f} |")
    b = rows[0]["baseline"]
    lines.append(f"| frozen M0 + v0 t | | | | {b['bond_rmse']:.4f} | {b['angle_rmse']:.4f} | "
                 f"{b['dihedral_rmse']:.4f} | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.variant is not None:
        print(json.dumps(run_variant(args.variant, args)))
        return 0
    names = args.only or list(VARIANTS)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    rows, pending = [], list(names)
    running: list[tuple[str, subprocess.Popen]] = []
    while pending or running:
        while pending and len(running) < args.parallel:
            name = pending.pop(0)
            forwarded = sys.argv[1:] if argv is None else list(argv)
            cmd = [sys.executable, "-m", "benchmarks.heads", *forwarded, "--variant", name]
            running.append((name, subprocess.Popen(cmd, cwd=REPO, env=env,
                                                   stdout=subprocess.PIPE, text=True)))
        name, proc = running.pop(0)
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"variant {name!r} failed")
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f"done: {name}", file=sys.stderr)
    rows.sort(key=lambda r: names.index(r["name"]))
    result = {"budget_s": args.budget_s, "parallel": args.parallel, "threads_per_run": 1,
              "machine": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
