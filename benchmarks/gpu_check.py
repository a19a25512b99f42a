"""CUDA-provider check of the runtime on a GPU machine: provider choice, CPU parity, throughput.

    python -m benchmarks.gpu_check --models exported/ethanol --out results/h100_gpu_check.json

Loads the ensemble with ``device="auto"`` (must pick CUDA, silently), ``"cuda"`` and
``"cpu"``; predicts the example starts at 21 times in [0, 10] fs on both and reports the
largest differences; then times ``propagate`` (frames every 0.5 fs) for several batch sizes
on CUDA and a few on the CPU provider.  Numbers from one run; see BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from gicnet_runtime.core.model import DEFAULT_MODEL_DIR, load_model
from gicnet_runtime.io.initial import initial_conditions_for

#: (trajectories, fs each): CUDA sweep and CPU comparison.
CUDA_RUNS = ((1, 1000.0), (16, 1000.0), (256, 1000.0), (1024, 500.0))
CPU_RUNS = ((1, 500.0), (256, 200.0))
DT_FS = 0.5


def throughput(model, positions, velocities, batch: int, duration_fs: float) -> dict:
    """fs of trajectory per wall second for ``batch`` copies of the starts (cycled)."""
    take = np.arange(batch) % len(positions)
    model.propagate(positions[:1], velocities[:1], 20.0, DT_FS)  # warm-up
    start = time.perf_counter()
    trajs = model.propagate(positions[take], velocities[take], duration_fs, DT_FS)
    wall = time.perf_counter() - start
    return {"B": batch, "duration_fs": duration_fs, "wall_s": wall,
            "fs_per_s_per_traj": duration_fs / wall,
            "aggregate_fs_per_s": batch * duration_fs / wall,
            "backtracks": int(sum(t.info["backtracks"] for t in trajs))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--init-dir", type=Path, default=DEFAULT_MODEL_DIR,
                        help="folder holding initial.extxyz")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    res = {"ort_version": ort.__version__, "available": ort.get_available_providers(),
           "models": str(args.models)}
    noise = io.StringIO()
    with contextlib.redirect_stderr(noise):
        auto = load_model(args.models, device="auto")
    res["auto_providers"] = auto.members[0].providers
    res["auto_stderr_chars"] = len(noise.getvalue())
    cuda, cpu = load_model(args.models, device="cuda"), load_model(args.models, device="cpu")
    res["cuda_providers"] = cuda.members[0].providers
    starts = initial_conditions_for(cpu.description, None, None, args.init_dir)
    pos, vel = starts.positions, starts.velocities
    times = np.linspace(0.0, 10.0, 21)
    a = cpu.predict(pos, vel, times, ensemble="select")
    b = cuda.predict(pos, vel, times, ensemble="select")
    res["parity_max_abs_pos_A"] = float(np.abs(a.positions - b.positions).max())
    res["parity_max_abs_vel_A_per_fs"] = float(np.abs(a.velocities - b.velocities).max())
    res["parity_same_member"] = bool(np.array_equal(a.member, b.member))
    res["throughput"] = {
        "cuda": [throughput(cuda, pos, vel, n, d) for n, d in CUDA_RUNS],
        "cpu16": [throughput(cpu, pos, vel, n, d) for n, d in CPU_RUNS]}
    args.out.write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
