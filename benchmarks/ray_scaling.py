"""gicnet propagate on Ray: 1 against 2 workers on this machine, the cost of a shard, and
an estimate for 10^6 ethanol trajectories of 10 ps on 100 one-GPU machines.

    python -m benchmarks.ray_scaling --out benchmarks/results/ray_scaling.json

In one process, with the shipped model and H5MD output (frames every 0.5 fs):

1. ``one_process``: ``propagate_to_files`` of all B trajectories in one batch on one
   onnxruntime thread (what ``gicnet propagate --threads 1`` does), and of the same
   trajectories shard by shard (the work a Ray actor does, without Ray);
2. ``ray``: a local Ray cluster of 2 CPUs (its start-up timed), then
   ``propagate_on_ray`` with 1 and with 2 actors (one thread each): wall time from call
   to return (actors started, model loaded, every file written), the actors' own
   seconds per shard, speed-up, and the overhead per shard (wall x actors - the actors'
   compute, over the shards);
3. ``small_shards``: many one-trajectory shards of one segment, where Ray's fixed cost
   per shard dominates;
4. ``estimate``: the wall time of 10^6 trajectories x 10 ps on 100 machines from the
   measured per-shard overhead, the output bytes per trajectory and stated throughputs
   (see ``estimate``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

#: Workload of the scaling runs.
TRAJECTORIES = 64
DURATION_FS = 4000.0
SHARD = 8
DT_FS = 0.5


def _starts(model, count: int):
    import numpy as np

    from gicnet_runtime.io.initial import initial_conditions_for

    start = initial_conditions_for(model.description, None, None, model.paths[0].parent)
    index = np.arange(count) % len(start)
    scale = 1.0 + 0.02 * (np.arange(count) // len(start))
    return start.positions[index], start.velocities[index] * scale[:, None, None]


def one_process(model, positions, velocities, folder: Path) -> dict:
    from gicnet_runtime.unroll.to_files import propagate_to_files

    start = time.perf_counter()
    written = propagate_to_files(model, positions, velocities, DURATION_FS, DT_FS,
                                 folder / "batch.h5")
    batch_s = time.perf_counter() - start
    shard_s = []
    for first in range(0, len(positions), SHARD):
        start = time.perf_counter()
        propagate_to_files(model, positions[first:first + SHARD],
                           velocities[first:first + SHARD], DURATION_FS, DT_FS,
                           folder / f"shard{first}.h5")
        shard_s.append(time.perf_counter() - start)
    simulated = len(positions) * DURATION_FS
    return {"one_batch_s": batch_s, "one_batch_fs_per_s": simulated / batch_s,
            "shard_by_shard_s": sum(shard_s), "per_shard_s": shard_s,
            "shard_by_shard_fs_per_s": simulated / sum(shard_s),
            "bytes_per_trajectory": written[0][0].stat().st_size}


def on_ray(model, positions, velocities, folder: Path, workers: int, shard: int,
           duration_fs: float) -> dict:
    from gicnet_runtime.cluster.propagate import propagate_on_ray

    compute = []
    start = time.perf_counter()
    propagate_on_ray(model, positions, velocities, duration_fs, DT_FS,
                     folder / f"ray{workers}_{shard}.h5", workers=workers, shard_size=shard,
                     device="cpu", threads=1, on_shard=lambda d: compute.append(d.compute_s))
    wall = time.perf_counter() - start
    shards = len(compute)
    return {"workers": workers, "shards": shards, "shard_size": shard, "wall_s": wall,
            "fs_per_s": len(positions) * duration_fs / wall,
            "actor_compute_s": sum(compute), "per_shard_compute_s": compute,
            "overhead_per_shard_s": (wall * workers - sum(compute)) / shards}


def estimate(measured: dict) -> dict:
    """10^6 trajectories x 10 ps (frames every 0.5 fs) on 100 machines with one GPU and
    16 cores each, one driver writing every file.

    Compute, per machine: (a) no GPU, 16 CPU actors at this machine's measured per-actor
    rate (a floor: the same shards, one thread each); (b) one GPU actor at 36.7k fs/s,
    the only GPU figure gicnet has (BENCHMARKS.md: the earlier time-head model, H100,
    1024 trajectories, launch-bound; the basis head needs ~20x fewer FLOPs per frame, so
    a GPU should do better, not measured).  Ray's cost: the measured overhead per shard,
    shards of 15 trajectories (the default cap of 64 MB of frames), spread over the
    machines' actors.  Output: the measured H5MD bytes per trajectory, all through one
    driver: its network link (10 Gb/s = 1.25 GB/s assumed) and disk (1 GB/s assumed).
    """
    n, length_fs, machines = 10**6, 10000.0, 100
    shard = 15
    total_fs = n * length_fs
    per_actor_rate = measured["ray"][0]["actor_compute_rate_fs_per_s"]
    overhead = max(r["overhead_per_shard_s"] for r in measured["ray"])
    shards = n / shard
    bytes_total = measured["one_process"]["bytes_per_trajectory"] * (
        length_fs / DURATION_FS) * n
    io_s = bytes_total / min(1.25e9, 1.0e9)
    cases = {}
    for name, rate, actors in (("cpu_16_actors_per_machine", per_actor_rate, 16),
                               ("one_gpu_actor_per_machine_36.7k_fs_per_s", 36.7e3, 1)):
        compute_s = total_fs / (machines * actors * rate)
        ray_s = shards * overhead / (machines * actors)
        cases[name] = {"compute_s": compute_s, "ray_overhead_s": ray_s,
                       "driver_io_s": io_s,
                       "wall_h": max(compute_s + ray_s, io_s) / 3600}
    return {"trajectories": n, "length_fs": length_fs, "machines": machines,
            "shard_size": shard, "overhead_per_shard_s": overhead,
            "output_TB": bytes_total / 1e12, "cases": cases}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from gicnet_runtime.core.model import load_model

    model = load_model(None, device="cpu", threads=1)
    positions, velocities = _starts(model, TRAJECTORIES)
    results = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                           "python": platform.python_version(), "ray": ray.__version__,
                           "load_average_start": os.getloadavg()},
               "workload": {"trajectories": TRAJECTORIES, "duration_fs": DURATION_FS,
                            "dt_fs": DT_FS, "shard_size": SHARD, "format": "h5md",
                            "model": [p.name for p in model.paths]}}
    with tempfile.TemporaryDirectory(prefix="gicnet-ray-bench-") as tmp:
        folder = Path(tmp)
        results["one_process"] = one_process(model, positions, velocities, folder)
        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
        results["ray_start_s"] = time.perf_counter() - start
        try:
            results["ray"] = [on_ray(model, positions, velocities, folder, w, SHARD,
                                     DURATION_FS) for w in (1, 2)]
            small = _starts(model, 32)
            results["small_shards"] = on_ray(model, *small, folder, 2, 1, 10.0)
        finally:
            ray.shutdown()
    one, two = results["ray"]
    results["speedup_2_over_1"] = one["wall_s"] / two["wall_s"]
    simulated = TRAJECTORIES * DURATION_FS
    for row in results["ray"]:
        row["actor_compute_rate_fs_per_s"] = simulated / row["actor_compute_s"]
    results["estimate"] = estimate(results)
    results["machine"]["load_average_end"] = os.getloadavg()
    text = json.dumps(results, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return results


if __name__ == "__main__":
    main()
