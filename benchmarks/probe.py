"""The runtime on its own, in a fresh process: import time and peak memory.

``python -m benchmarks.probe import`` times ``import gicnet_runtime`` (no onnxruntime),
then ``from gicnet_runtime import load_model`` (pulls in onnxruntime), then opening the
model.  ``python -m benchmarks.probe memory --batch 256 --duration-fs 1000`` unrolls
trajectories and reports the process's peak resident memory (``VmHWM``: numpy,
onnxruntime's arena, the interpreter) and tracemalloc's peak (numpy and Python objects
only).  Both print one JSON object.  This module imports nothing outside the runtime.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path


def _maxrss_mib() -> float:
    """Peak resident memory of this process, MiB.

    Linux's ``ru_maxrss`` survives ``exec``: a probe started by a big parent would report
    the parent's peak.  ``VmHWM`` belongs to this process's own address space."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    scale = 1.0 if sys.platform == "darwin" else 1024.0  # Linux reports KiB, macOS bytes
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def import_times(device: str, threads: int) -> dict:
    start = time.perf_counter()
    import gicnet_runtime  # noqa: F401

    package = time.perf_counter()
    from gicnet_runtime import load_model

    runtime = time.perf_counter()
    load_model(None, device=device, threads=threads)
    opened = time.perf_counter()
    return {"import_gicnet_runtime_s": package - start,
            "import_load_model_with_onnxruntime_s": runtime - start,
            "open_shipped_model_s": opened - runtime, "maxrss_after_open_MiB": _maxrss_mib()}


def peak_memory(device: str, threads: int, batch: int, duration_fs: float, dt_fs: float) -> dict:
    import tracemalloc

    import numpy as np

    from gicnet_runtime import load_model
    from gicnet_runtime.model import DEFAULT_MODEL_DIR

    from benchmarks.initial import batch_of, load_initial

    model = load_model(None, device=device, threads=threads)
    _, pos, vel = load_initial(DEFAULT_MODEL_DIR / "initial.extxyz")
    pos, vel = batch_of(pos, vel, batch)
    before = _maxrss_mib()
    tracemalloc.start()
    trajectories = model.propagate(pos, vel, duration_fs, dt_fs)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    kept = sum(t.positions.nbytes + t.velocities.nbytes for t in trajectories)
    return {"batch": batch, "duration_fs": duration_fs, "dt_fs": dt_fs,
            "members": len(model.members), "maxrss_before_propagate_MiB": before,
            "maxrss_peak_MiB": _maxrss_mib(), "tracemalloc_peak_MiB": traced_peak / 2**20,
            "result_positions_velocities_MiB": kept / 2**20,
            "frames": int(sum(len(t.time_fs) for t in trajectories)),
            "numpy": np.__version__}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("import", "memory"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--duration-fs", type=float, default=1000.0)
    parser.add_argument("--dt-fs", type=float, default=0.5)
    args = parser.parse_args(argv)
    if args.what == "import":
        result = import_times(args.device, args.threads)
    else:
        result = peak_memory(args.device, args.threads, args.batch, args.duration_fs, args.dt_fs)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
