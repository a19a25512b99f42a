"""gicnet against MD with ML potentials and against the hardware, in one process and run.

    python -m benchmarks.speed --out benchmarks/results/cpu.json
    python -m benchmarks.speed --device cuda --skip-md --out benchmarks/results/h100.json

On ethanol with output frames every ``--dt-fs`` (0.5 fs):

1. baselines (unless ``--skip-md``): ASE velocity-Verlet MD for ``--md-duration-fs`` with
   ANI-1x (8-model ensemble, single model) and GFN2-xTB (:mod:`benchmarks.md`);
2. gicnet ``propagate`` with the shipped ensemble and with its first member alone, for one
   trajectory and batches of initial conditions: fs of trajectory per wall second
   (summed over the batch), and the ratios gicnet / baseline;
3. hardware efficiency (:mod:`benchmarks.hardware`): FLOPs per predicted frame (graph and
   analytic count), achieved FLOP/s (bare graph and inside propagate), the same
   machine's float32 matmul FLOP/s, and onnxruntime graph-optimisation levels;
4. the runtime in a fresh process (:mod:`benchmarks.probe`): import time, peak memory.

Thread counts are fixed (``--threads`` for onnxruntime's intra-op pool, torch, OpenMP and
BLAS) before numpy is imported.  Results are printed and written as JSON to ``--out``.
``--device cuda --skip-md`` imports neither torch, ASE nor tblite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Targets of issue #8.
TARGET_SINGLE = 300.0  # one trajectory, gicnet ensemble / ANI-1x ensemble MD
TARGET_BATCH = 3000.0  # aggregate of TARGET_BATCH_SIZE trajectories / ANI-1x ensemble MD
TARGET_BATCH_SIZE = 256
TARGET_PEAK_FRACTION = 0.5  # achieved / measured matmul FLOP/s at large batch
#: Batches that run this fast are repeated and the median taken, s.
REPEAT_BELOW_S = 2.0
REPEATS = 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads everywhere")
    p.add_argument("--out", type=Path, default=None, help="JSON results (default: "
                   "benchmarks/results/<device>.json)")
    p.add_argument("--skip-md", action="store_true", help="gicnet measurements only")
    p.add_argument("--baselines-from", type=Path, default=None,
                   help="take the MD baselines from this earlier JSON (e.g. with --skip-md)")
    p.add_argument("--dt-fs", type=float, default=0.5)
    p.add_argument("--segment-fs", type=float, default=None,
                   help="unrolling segment length, fs (default: the model's, 7.5 fs shipped)")
    p.add_argument("--duration-fs", type=float, default=1000.0)
    p.add_argument("--md-duration-fs", type=float, default=1000.0)
    p.add_argument("--batches", default="1,16,256,1024")
    p.add_argument("--large-batch-duration-fs", type=float, default=200.0,
                   help="duration for batches >= 1024 (CPU time bound)")
    p.add_argument("--graph-batches", default=None,
                   help="batch sizes of the bare-graph sweep (default depends on --device)")
    p.add_argument("--memory-batch", type=int, default=256)
    return p.parse_args(argv)


def fix_threads(threads: int) -> None:
    """OpenMP (tblite), OpenBLAS/MKL (numpy) thread counts; must precede importing numpy."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def machine(args: argparse.Namespace) -> dict:
    import numpy as np
    import onnxruntime as ort

    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "load_average_start": os.getloadavg(), "python": platform.python_version(),
            "numpy": np.__version__, "onnxruntime": ort.__version__, "device": args.device,
            "threads": {"onnxruntime_intra_op": args.threads, "onnxruntime_inter_op": 1,
                        "torch": args.threads, "OMP/OPENBLAS/MKL": args.threads}}


class FrameCounter:
    """Counts the frames (rows x times) the members' sessions are asked for."""

    def __init__(self, model) -> None:
        self.frames = 0
        for session in model.members:
            session.run = self._counted(session.run)

    def _counted(self, run):
        def counted(positions, velocities, times_fs):
            self.frames += times_fs.shape[0] * times_fs.shape[1]
            return run(positions, velocities, times_fs)
        return counted


def run_gicnet(model, label: str, pos, vel, duration_fs: float, dt_fs: float,
               flops_frame: float, segment_fs: float | None = None) -> dict:
    """Unroll len(pos) trajectories; fs of trajectory per wall s (median of REPEATS if fast)."""
    counter = FrameCounter(model)
    walls, frames = [], []
    while len(walls) < (REPEATS if not walls or walls[0] < REPEAT_BELOW_S else 1):
        counter.frames = 0
        start = time.perf_counter()
        trajectories = model.propagate(pos, vel, duration_fs, dt_fs, segment_fs=segment_fs)
        walls.append(time.perf_counter() - start)
        frames.append(counter.frames)
    wall = statistics.median(walls)
    simulated = sum(float(t.time_fs[-1]) for t in trajectories)
    network_frames = frames[walls.index(wall)] if wall in walls else frames[0]
    return {"model": label, "members": len(model.members), "batch": len(pos),
            "duration_fs": duration_fs, "dt_fs": dt_fs, "wall_s": wall, "repeats": len(walls),
            "segment_fs": trajectories[0].info["segment_fs"],
            "restore_energy": trajectories[0].info["restore_energy"],
            "fs_per_s": simulated / wall, "fs_per_s_per_trajectory": simulated / wall / len(pos),
            "network_frames": network_frames,
            "achieved_flop_per_s": network_frames * flops_frame / wall,
            "failed": sum("failure" in t.info for t in trajectories),
            "backtracks": sum(t.info["backtracks"] for t in trajectories),
            "segments_over_threshold": sum(len(t.info["segments_over_threshold"])
                                           for t in trajectories)}


def gicnet_runs(args, initial, flops_frame: float) -> list[dict]:
    from benchmarks.initial import batch_of
    from gicnet_runtime import load_model
    from gicnet_runtime.model import model_files

    _, pos0, vel0 = initial
    models = {"ensemble": lambda: load_model(None, device=args.device, threads=args.threads),
              "single": lambda: load_model(model_files(None)[0], device=args.device,
                                           threads=args.threads)}
    rows = []
    for label, make in models.items():
        model = make()
        for size in (int(b) for b in args.batches.split(",")):
            pos, vel = batch_of(pos0, vel0, size)
            duration = args.large_batch_duration_fs if size >= 1024 else args.duration_fs
            rows.append(run_gicnet(model, label, pos, vel, duration, args.dt_fs, flops_frame,
                                   args.segment_fs))
            print(_gicnet_line(rows[-1]), flush=True)
    return rows


def _gicnet_line(r: dict) -> str:
    return (f"gicnet {r['model']:8s} ({r['members']} member{'s' * (r['members'] > 1)}) "
            f"B={r['batch']:5d} {r['duration_fs']:6.0f} fs: {r['fs_per_s']:12.1f} fs/s "
            f"({r['wall_s']:.2f} s, {r['achieved_flop_per_s'] / 1e9:.1f} GFLOP/s)")


def hardware_section(args, initial, providers: list[str]) -> dict:
    from benchmarks import hardware as hw
    from gicnet_runtime.model import model_files
    from gicnet_runtime.session import Session

    path = model_files(None)[0]
    n_atoms = initial[1].shape[1]
    frames_per_segment = round(10.0 / args.dt_fs)  # tc = 10 fs
    counts = hw.flops_per_frame(path, n_atoms, frames_per_segment)
    session = Session(path, device=args.device, threads=args.threads)
    default_batches = "1,16,51,256,1024" if args.device == "cpu" else "1,16,256,1024,4096,16384"
    batches = [int(b) for b in (args.graph_batches or default_batches).split(",")]
    # The peak is probed before and after the sweep and the best kept: on a shared
    # machine a single probe may land in a busy moment.
    peaks = [hw.onnxruntime_matmul_peak(providers, args.threads)]
    graph = hw.graph_throughput(session, initial[1:], batches, frames_per_segment,
                                counts["flops_per_frame"])
    peaks.append(hw.onnxruntime_matmul_peak(providers, args.threads))
    if args.device == "cpu":
        peaks.append(hw.numpy_matmul_peak())
    peak = max(p["flop_per_s"] for p in peaks)
    best = max(graph, key=lambda r: r["flop_per_s"])
    return {"flops": counts, "graph_throughput": graph, "matmul_peaks": peaks,
            "matmul_peak_flop_per_s": peak, "best_graph_flop_per_s": best["flop_per_s"],
            "best_graph_batch": best["batch"], "best_fraction_of_peak": best["flop_per_s"] / peak,
            "optimisation_levels": optimisation_levels(
                path, providers, args.threads, frames_per_segment,
                batch=51 if args.device == "cpu" else 1024)}


def optimisation_levels(path, providers: list[str], threads: int, n_times: int,
                        batch: int = 51) -> list[dict]:
    """Frames/s of the bare graph (batch x n_times per call) for each onnxruntime level."""
    import numpy as np
    import onnxruntime as ort

    from benchmarks.hardware import best_seconds_per_call

    rng = np.random.default_rng(0)
    feed = {"positions": rng.normal(0, 1, (batch, 9, 3)).astype(np.float32),
            "velocities": rng.normal(0, 0.01, (batch, 9, 3)).astype(np.float32),
            "times": np.tile(np.linspace(0.5, 10, n_times, dtype=np.float32), (batch, 1))}
    rows = []
    for level in ("ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL"):
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        session = ort.InferenceSession(str(path), options, providers=providers)
        seconds = best_seconds_per_call(lambda s=session: s.run(None, feed))
        rows.append({"level": level, "frames_per_call": batch * n_times,
                     "frames_per_s": batch * n_times / seconds})
    return rows


def probe(args, what: str) -> dict:
    """Run :mod:`benchmarks.probe` in a fresh interpreter (median of REPEATS for imports)."""
    cmd = [sys.executable, "-m", "benchmarks.probe", what, "--device", args.device,
           "--threads", str(args.threads), "--batch", str(args.memory_batch),
           "--duration-fs", str(args.duration_fs), "--dt-fs", str(args.dt_fs)]
    runs = []
    for _ in range(REPEATS if what == "import" else 1):
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True,
                             env=dict(os.environ, PYTHONPATH=str(REPO)))
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {k: statistics.median(r[k] for r in runs) if isinstance(runs[0][k], float)
            else runs[0][k] for k in runs[0]}


def ratios(gicnet: list[dict], baselines: list[dict]) -> dict:
    """gicnet fs/s over each baseline's fs/s, keyed 'model/B=size' -> baseline -> ratio."""
    return {f"{g['model']}/B={g['batch']}": {b["baseline"]: g["fs_per_s"] / b["fs_per_s"]
                                            for b in baselines} for g in gicnet}


def targets(gicnet: list[dict], baselines: list[dict], hardware: dict) -> dict:
    ani = next((b["fs_per_s"] for b in baselines if b["baseline"] == "ani1x_ensemble"), None)
    pick = {(g["model"], g["batch"]): g for g in gicnet}
    out = {}
    for key, size, target in (("single_trajectory", 1, TARGET_SINGLE),
                              (f"batch_{TARGET_BATCH_SIZE}", TARGET_BATCH_SIZE, TARGET_BATCH)):
        row = pick.get(("ensemble", size))
        if ani and row:
            out[key] = {"ratio_vs_ani1x_ensemble": row["fs_per_s"] / ani, "target": target,
                        "met": row["fs_per_s"] / ani >= target}
    fraction = hardware["best_fraction_of_peak"]
    out["fraction_of_matmul_peak"] = {"value": fraction, "target": TARGET_PEAK_FRACTION,
                                      "met": fraction >= TARGET_PEAK_FRACTION}
    return out


def baselines_section(args, initial) -> list[dict]:
    if args.baselines_from is not None:
        rows = json.loads(args.baselines_from.read_text())["baselines"]
        return [dict(r, source=str(args.baselines_from)) for r in rows]
    if args.skip_md:
        return []
    from benchmarks import md

    numbers, pos, vel = initial
    rows = []
    for name in md.BASELINES:
        rows += md.run_baselines([name], numbers, pos[0], vel[0], args.md_duration_fs,
                                 args.dt_fs, args.threads)
        r = rows[-1]
        print(f"MD {r['baseline']:15s} {r['duration_fs']:6.0f} fs: {r['fs_per_s']:12.1f} fs/s "
              f"({r['ms_per_step']:.2f} ms/step, drift {r['total_energy_drift_eV']:+.4f} eV)",
              flush=True)
    return rows


def report(results: dict) -> None:
    """The summary table on stdout."""
    hw = results["hardware"]
    print(f"\nFLOPs per predicted frame: {hw['flops']['flops_per_frame'] / 1e6:.3f} M "
          f"(graph count = analytic: {hw['flops'].get('graph_and_analytic_agree')})")
    for p in hw["matmul_peaks"]:
        print(f"matmul peak {p['engine']}: {p['flop_per_s'] / 1e9:.1f} GFLOP/s {p['shape']}")
    for g in hw["graph_throughput"]:
        print(f"bare graph B={g['batch']:5d} x K={g['n_times']}: {g['frames_per_s']:10.0f} "
              f"frames/s, {g['flop_per_s'] / 1e9:7.1f} GFLOP/s "
              f"({g['flop_per_s'] / hw['matmul_peak_flop_per_s']:.0%} of matmul peak)")
    for level in hw["optimisation_levels"]:
        print(f"{level['level']:20s} {level['frames_per_s']:10.0f} frames/s")
    for name, row in results["ratios"].items():
        print(f"ratio {name:16s} " + "  ".join(f"{b}: {r:9.1f}x" for b, r in row.items()))
    for name, t in results["targets"].items():
        value = t.get("ratio_vs_ani1x_ensemble", t.get("value"))
        print(f"target {name:25s} {value:10.3g} (target {t['target']:g}): "
              f"{'met' if t['met'] else 'NOT met'}")
    mem, imp = results["memory"], results["import"]
    print(f"peak memory (B={mem['batch']}, {mem['duration_fs']:g} fs, fresh process): "
          f"{mem['maxrss_peak_MiB']:.0f} MiB RSS, "
          f"tracemalloc {mem['tracemalloc_peak_MiB']:.0f} MiB")
    print(f"import gicnet_runtime {imp['import_gicnet_runtime_s'] * 1e3:.0f} ms; with "
          f"onnxruntime {imp['import_load_model_with_onnxruntime_s'] * 1e3:.0f} ms; "
          f"opening the model {imp['open_shipped_model_s'] * 1e3:.0f} ms")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    fix_threads(args.threads)
    from benchmarks.initial import load_initial
    from gicnet_runtime import load_model
    from gicnet_runtime.model import DEFAULT_MODEL_DIR

    started = time.perf_counter()
    results = {"machine": machine(args), "arguments": {k: str(v) for k, v in vars(args).items()}}
    initial = load_initial(DEFAULT_MODEL_DIR / "initial.extxyz")
    model = load_model(None, device=args.device, threads=args.threads)
    providers = model.members[0].providers
    results["machine"]["providers"] = providers
    results["models"] = [str(p.relative_to(REPO)) for p in model.paths]
    results["baselines"] = baselines_section(args, initial)
    results["hardware"] = hardware_section(args, initial, providers)
    results["gicnet"] = gicnet_runs(args, initial, results["hardware"]["flops"]["flops_per_frame"])
    results["ratios"] = ratios(results["gicnet"], results["baselines"])
    results["targets"] = targets(results["gicnet"], results["baselines"], results["hardware"])
    results["memory"] = probe(args, "memory")
    results["import"] = probe(args, "import")
    results["machine"]["load_average_end"] = os.getloadavg()
    results["total_wall_s"] = time.perf_counter() - started
    report(results)
    out = args.out or REPO / "benchmarks" / "results" / f"{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwritten {out} ({results['total_wall_s']:.0f} s)")
    return results


if __name__ == "__main__":
    main()
