"""gicnet against MD with ML potentials and against the hardware, in one process and run.

    python -m benchmarks.speed --out benchmarks/results/cpu.json       # everything, CPU
    python -m benchmarks.table benchmarks/results/cpu.json             # BENCHMARKS.md tables
    python -m benchmarks.speed --estimate                              # the plan and its time
    python -m benchmarks.speed --device cuda --skip-md \\
        --baselines-from benchmarks/results/cpu.json --out benchmarks/results/h100.json

On ethanol with output frames every ``--dt-fs`` (0.5 fs), the sections (``--sections``):

1. ``md``: ASE velocity-Verlet MD for ``--md-duration-fs`` with ANI-1x (8-model ensemble
   and single model, each float64 as gicnet's reference engines run it and float32 as
   TorchANI runs by default) and GFN2-xTB (:mod:`benchmarks.md`);
2. ``flops``: FLOPs per start and per predicted frame of the shipped files (ensemble file
   and one member), counted from the graph and analytically, and FLOPs per simulated fs
   (:mod:`benchmarks.hardware`);
3. ``hardware``: the bare graph's frames/s and FLOP/s against the same machine's float32
   matmul FLOP/s, its kernel time per operator type (onnxruntime's profiler) and
   onnxruntime's graph-optimisation levels;
4. ``gicnet``: ``Model.propagate`` with the shipped model (``load_model(None)``), with one
   member alone and (when the shipped model is one ensemble file) with its member files as
   separate sessions, for 1, 16, 256 and 1024 trajectories: fs of trajectory per wall
   second summed over the batch, FLOP/s inside propagate, and the ratio of every gicnet
   row to every MD row;
5. ``memory``: peak memory and import time of the runtime in a fresh process
   (:mod:`benchmarks.probe`);
6. ``readme``: README's first command, ``gicnet propagate --duration-fs 10000 --out
   DIR/traj.xyz``, run as a user runs it (console script, the user's thread settings):
   wall time and peak RSS;
7. ``profile``: where propagate's time goes (:mod:`benchmarks.profile`);
8. ``dispatch``: onnxruntime's cost per graph node and the shipped file's calls of one
   trajectory's segment, against what 300x ANI-1x-ensemble MD leaves of a segment
   (:mod:`benchmarks.dispatch`; CPU provider).

Thread counts are fixed (``--threads`` for onnxruntime's intra-op pool, torch, OpenMP and
BLAS) before numpy is imported; README's command gets the environment this process was
started with.  Results are printed and written as JSON to ``--out``; the targets of the
issue are judged in ``targets``.  ``--device cuda --skip-md`` imports neither torch, ASE
nor tblite.
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
#: Targets (issue 15).
TARGET_SINGLE = 300.0  # one trajectory, gicnet ensemble / ANI-1x ensemble MD
TARGET_BATCH = 3000.0  # aggregate of TARGET_BATCH_SIZE trajectories / ANI-1x ensemble MD
TARGET_BATCH_SIZE = 256
TARGET_PEAK_FRACTION = 0.5  # achieved / measured matmul FLOP/s at large batch
TARGET_LARGE_BATCH = 256  # "large batch": bare-graph batches of at least this many starts
TARGET_README_RSS_MB = 200.0  # README's first command, peak RSS, 1e6 bytes
#: Batches that run this fast are repeated and the median taken, s.
REPEAT_BELOW_S = 2.0
REPEATS = 3
SECTIONS = ("md", "flops", "hardware", "gicnet", "memory", "readme", "profile",
            "dispatch")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: Rates assumed for the time estimate (the 2-core development machine, one thread, idle),
#: fs/s; a busy machine takes up to ~2x longer.
_ASSUMED_MD_FS_PER_S = {"ani1x_ensemble": 55.0, "ani1x_ensemble_float32": 55.0,
                        "ani1x_single": 150.0, "ani1x_single_float32": 150.0,
                        "gfn2_xtb": 300.0}
_ASSUMED_GICNET_FS_PER_S = {("ensemble", 1): 2500.0, ("ensemble", 16): 15000.0,
                            ("ensemble", "large"): 18000.0, ("single", 1): 5000.0,
                            ("single", 16): 25000.0, ("single", "large"): 32000.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads everywhere")
    p.add_argument("--out", type=Path, default=None, help="JSON results (default: "
                   "benchmarks/results/<device>.json)")
    p.add_argument("--model-dir", type=Path, default=None,
                   help="a model folder laid out like the shipped one, used instead of it "
                   "everywhere (development; default: load_model(None), exported/ethanol)")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--skip-md", action="store_true", help="no MD baselines (GPU machines)")
    p.add_argument("--baselines-from", type=Path, default=None,
                   help="take the MD baselines from this earlier JSON (e.g. with --skip-md)")
    p.add_argument("--estimate", action="store_true", help="print the plan and its estimated "
                   "time, run nothing")
    p.add_argument("--dt-fs", type=float, default=0.5)
    p.add_argument("--segment-fs", type=float, default=None,
                   help="unrolling segment length, fs (default: the model's)")
    p.add_argument("--duration-fs", type=float, default=1000.0)
    p.add_argument("--md-duration-fs", type=float, default=1000.0)
    p.add_argument("--batches", default="1,16,256,1024")
    p.add_argument("--members-batches", default="1,256",
                   help="batches for the member files as separate sessions (only when the "
                   "shipped model is one ensemble file)")
    p.add_argument("--large-batch-duration-fs", type=float, default=200.0,
                   help="duration for batches >= 1024 (CPU time bound)")
    p.add_argument("--graph-batches", default=None,
                   help="batch sizes of the bare-graph sweep (default depends on --device)")
    p.add_argument("--memory-batch", type=int, default=256)
    p.add_argument("--readme-duration-fs", type=float, default=10000.0,
                   help="README's command's --duration-fs (README: 10000)")
    p.add_argument("--profile-batches", default="1,256")
    p.add_argument("--profile-durations-fs", default="5000,500")
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    if args.skip_md and "md" in args.sections:
        args.sections.remove("md")
    return args


def fix_threads(threads: int) -> dict:
    """OpenMP (tblite), OpenBLAS/MKL (numpy) thread counts; must precede importing numpy.
    Returns the environment as it was (for README's command, run as a user runs it)."""
    user_env = dict(os.environ)
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    return user_env


# --------------------------------------------------------------------------- the plan

def _batches(args) -> list[int]:
    return [int(b) for b in args.batches.split(",") if b]


def _duration(args, size: int) -> float:
    return args.large_batch_duration_fs if size >= 1024 else args.duration_fs


def estimate_seconds(args, has_ensemble_file: bool = True) -> dict:
    """Rough seconds per section from assumed rates (the plan, printed before the run)."""
    from benchmarks.md import BASELINES

    est = dict.fromkeys(SECTIONS, 0.0)
    if "md" in args.sections and args.baselines_from is None:
        est["md"] = sum(args.md_duration_fs / r + 3.0 for r in
                        (_ASSUMED_MD_FS_PER_S.get(n, 55.0) for n in BASELINES))
    est["flops"] = 6.0 if "flops" in args.sections else 0.0
    n_graph = len((args.graph_batches or "1,16,51,256,1024").split(","))
    if "hardware" in args.sections:
        est["hardware"] = ((2 if has_ensemble_file else 1) * n_graph * 1.6 + 8 * 1.2
                           + 3 * 1.6 + 4 + 5)
    if "gicnet" in args.sections:
        def run(kind, size, duration):
            rate = _ASSUMED_GICNET_FS_PER_S[(kind, size if size < 256 else "large")]
            wall = size * duration / rate
            return wall * (REPEATS if wall < REPEAT_BELOW_S else 1) + 0.5

        total = sum(run(k, b, _duration(args, b)) for k in ("ensemble", "single")
                    for b in _batches(args))
        if has_ensemble_file:
            total += sum(run("ensemble", int(b), _duration(args, int(b))) * 1.2
                         for b in args.members_batches.split(",") if b)
        est["gicnet"] = total + 3.0
    if "memory" in args.sections:
        est["memory"] = (args.memory_batch * args.duration_fs
                         / _ASSUMED_GICNET_FS_PER_S[("ensemble", "large")] + 4.0 + 3 * 1.5)
    if "readme" in args.sections:
        est["readme"] = 3.5 + 10 * args.readme_duration_fs / 6500.0
    if "profile" in args.sections:
        sizes = [int(b) for b in args.profile_batches.split(",")]
        durations = [float(d) for d in args.profile_durations_fs.split(",")]
        est["profile"] = sum(2.3 * b * d / _ASSUMED_GICNET_FS_PER_S[
            ("ensemble", 1 if b < 16 else 16 if b < 256 else "large")]
            for b, d in zip(sizes, durations)) + 2.0
    est["dispatch"] = 8.0 if "dispatch" in args.sections and args.device == "cpu" else 0.0
    est["total"] = sum(est.values()) + 5.0
    return est


def plan_lines(args, est: dict) -> list[str]:
    lines = [f"plan ({args.device}, {args.threads} thread{'s' * (args.threads > 1)}; "
             f"sections {','.join(args.sections)}):"]
    if "md" in args.sections:
        lines.append(f"  MD baselines: {args.md_duration_fs:g} fs each (5 engines)")
    if "gicnet" in args.sections:
        shortened = [b for b in _batches(args) if b >= 1024]
        lines.append(f"  gicnet: batches {args.batches} x {args.duration_fs:g} fs"
                     + (f"; batches {shortened} shortened to {args.large_batch_duration_fs:g}"
                        " fs (time bound on 2 cores)" if shortened else ""))
    if "memory" in args.sections:
        lines.append(f"  memory probe: {args.memory_batch} x {args.duration_fs:g} fs")
    if "readme" in args.sections:
        lines.append(f"  README command: gicnet propagate --duration-fs "
                     f"{args.readme_duration_fs:g}"
                     + ("" if args.readme_duration_fs == 10000 else " (SHORTENED from 10000)"))
    if "profile" in args.sections:
        lines.append(f"  profile: batches {args.profile_batches} x "
                     f"{args.profile_durations_fs} fs")
    lines.append("  estimated " + ", ".join(f"{k} {v:.0f} s" for k, v in est.items()
                                            if v and k != "total")
                 + f"; total ~{est['total'] / 60:.1f} min on an idle 2-core machine "
                 "(up to ~2x when the cores are shared)")
    return lines


# --------------------------------------------------------------------------- the machine

def machine(args: argparse.Namespace) -> dict:
    import numpy as np
    import onnxruntime as ort

    from benchmarks.hardware import cpu_name

    return {"platform": platform.platform(), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "load_average_start": os.getloadavg(), "python": platform.python_version(),
            "numpy": np.__version__, "onnxruntime": ort.__version__, "device": args.device,
            "threads": {"onnxruntime_intra_op": args.threads, "onnxruntime_inter_op": 1,
                        "torch": args.threads, "OMP/OPENBLAS/MKL": args.threads}}


def shipped_files(model_dir: Path | None = None) -> dict:
    """The shipped model's files (or those of ``model_dir``, laid out alike): the ensemble
    file (None until it exists), the member files (``members/`` or, for the older layout,
    the folder's ``member_*.onnx``) and the single member used for the one-member rows;
    ``load``: what to give load_model for the shipped model (None: its default)."""
    from gicnet_runtime.core.model import DEFAULT_MODEL_DIR

    folder = DEFAULT_MODEL_DIR if model_dir is None else Path(model_dir)
    ensemble = folder / "ensemble.onnx"
    members = (sorted((folder / "members").glob("member_*.onnx"))
               or sorted(folder.glob("member_*.onnx")))
    if not members:
        raise SystemExit(f"no member files in {folder} or {folder / 'members'}")
    return {"folder": folder, "ensemble_file": ensemble if ensemble.is_file() else None,
            "members": members, "single": members[0],
            "load": None if model_dir is None else folder}


def model_facts(model) -> dict:
    """What a loaded Model says about itself (public attributes only; the session
    providers are the one internal read, isolated here)."""
    facts = {"n_members": getattr(model, "n_members", None),
             "providers": getattr(model, "providers", None)}
    paths = getattr(model, "paths", None)
    if paths is not None:
        facts["paths"] = [_rel(p) for p in paths]
    desc = model.description
    facts.update({"head": getattr(desc, "head", None), "n_basis": getattr(desc, "n_basis", None),
                  "tc_fs": desc.tc_fs, "default_segment_fs": desc.default_segment_fs,
                  "n_atoms": desc.n_atoms})
    if facts["providers"] is None:
        try:  # internal, for runtimes without Model.providers: the first session's
            facts["providers"] = list(model.members[0].providers)
        except (AttributeError, IndexError, TypeError):
            pass
    else:
        facts["providers"] = list(facts["providers"])
    return facts


def _rel(path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- FLOPs

def flops_section(args, files: dict, segment_fs: float) -> dict:
    from benchmarks import hardware as hw

    layout = hw.segment_times(segment_fs, args.dt_fs, args.duration_fs)
    n_times = int(round(layout["mean_times_per_segment"]))
    out = {"segment_fs": segment_fs, "dt_fs": args.dt_fs, "segment_layout": layout,
           "n_times": n_times, "files": {}}
    targets = {"single": files["single"]}
    if files["ensemble_file"] is not None:
        targets["ensemble_file"] = files["ensemble_file"]
    for kind, path in targets.items():
        report = hw.flops_report(path, n_times)
        report["file"] = _rel(path)
        out["files"][kind] = report
        print(f"FLOPs {kind:13s} {_rel(path)}: {hw.describe_terms(report['terms'])}; "
              f"{report['flops_per_frame'] / 1e6:.4f} MFLOP per predicted frame at K = "
              f"{n_times} ({hw.check_flops(report)})", flush=True)
    return out


def model_terms(flops: dict, kind: str, n_members: int) -> dict:
    """FLOP terms of one model: for "ensemble" the ensemble file's when there is one, else
    (and for "single", "members") n_members x one member's."""
    files = flops["files"]
    if kind == "ensemble" and "ensemble_file" in files:
        return files["ensemble_file"]["terms"]
    return {k: v * n_members for k, v in files["single"]["terms"].items()}


def flops_per_fs_section(flops: dict, n_members: int, baselines: list[dict]) -> dict:
    """FLOPs per simulated fs of one trajectory (per segment call / L), both models,
    against the ANI-1x baselines' network FLOPs per fs."""
    from benchmarks import hardware as hw

    segment, times = flops["segment_fs"], flops["segment_layout"]["mean_times_per_segment"]
    rows = {}
    for kind, members in (("ensemble", n_members), ("single", 1)):
        terms = model_terms(flops, kind, members)
        rows[kind] = {"members": members, "flops_per_segment_call":
                      terms["per_start"] + terms["per_frame"] * times,
                      "flops_per_fs": hw.flops_per_simulated_fs(terms, times, segment),
                      "times_per_segment": times, "segment_fs": segment}
    for b in baselines:
        if "network_flops_per_fs" in b:
            rows[f"md_{b['baseline']}"] = {"flops_per_fs": b["network_flops_per_fs"],
                                           "what": "network only (AEV not counted)"}
    return rows


# --------------------------------------------------------------------------- hardware

def hardware_section(args, files: dict, initial, flops: dict, providers: list[str]) -> dict:
    from benchmarks import hardware as hw

    n_times = flops["n_times"]
    chunk = None
    if args.device == "cpu":
        try:
            from gicnet_runtime.core.session import CPU_CHUNK_FRAMES as chunk
        except ImportError:
            chunk = hw.CPU_CHUNK_FRAMES
    default_batches = "1,16,51,256,1024" if args.device == "cpu" else "1,16,256,1024,4096,16384"
    batches = [int(b) for b in (args.graph_batches or default_batches).split(",")]
    shapes = [hw.PEAK_SHAPE]
    for inner, cols in hw.largest_layers(files["single"]):
        shapes.append((hw.PEAK_ROWS, inner, cols))
    energy = flops["files"]["single"]["architecture"]["energy_hidden"]
    shapes.append((hw.PEAK_ROWS, energy[0], energy[1]))  # the largest per-frame layer
    # The peak is probed before and after the sweep and the best kept: on a shared
    # machine a single probe may land in a busy moment.
    peaks = [hw.onnxruntime_matmul_peak(providers, args.threads, *s) for s in shapes]
    graph = []
    sweeps = [("single", files["single"], 1)]
    if files["ensemble_file"] is not None:
        members = flops["files"]["ensemble_file"]["architecture"]["n_members"]
        sweeps.append(("ensemble_file", files["ensemble_file"], members))
    for kind, path, members in sweeps:
        session = hw.open_session(path, providers, args.threads)
        rows = hw.graph_throughput(session, initial[1:], batches, n_times,
                                   flops["files"][kind]["terms"], members, chunk)
        for r in rows:
            r["file"] = kind
            print(f"bare graph {kind:13s} B={r['batch']:5d} x K={n_times}: "
                  f"{r['frames_per_s']:10.0f} frames/s, {r['flop_per_s'] / 1e9:6.1f} GFLOP/s",
                  flush=True)
        graph += rows
    main_path = files["ensemble_file"] or files["single"]
    main_members = sweeps[-1][2]
    try:
        operators = hw.operator_split(main_path, providers, args.threads, initial[1:],
                                      TARGET_LARGE_BATCH, n_times, main_members, chunk)
        top = ", ".join(f"{op} {f:.0%}" for op, f in list(operators["fractions"].items())[:6])
        print(f"onnxruntime profiler, {_rel(main_path)} B={TARGET_LARGE_BATCH} x K={n_times}: "
              f"{top} ({operators['nodes_after_optimisation']} nodes)", flush=True)
    except Exception as err:  # noqa: BLE001 (informative only; keep the run going)
        operators = {"error": f"{type(err).__name__}: {err}"}
    peaks.append(hw.onnxruntime_matmul_peak(providers, args.threads))
    if args.device == "cpu":
        peaks.append(hw.numpy_matmul_peak())
    for p in peaks:
        print(f"matmul {p['engine']} {p['shape']}: {p['flop_per_s'] / 1e9:.1f} GFLOP/s",
              flush=True)
    peak = max(p["flop_per_s"] for p in peaks)
    large = [r for r in graph if r["batch"] >= TARGET_LARGE_BATCH] or graph
    best = max(graph, key=lambda r: r["flop_per_s"])
    best_large = max(large, key=lambda r: r["flop_per_s"])
    main = "ensemble_file" if files["ensemble_file"] is not None else "single"
    main_large = [r for r in large if r["file"] == main] or large
    best_main = max(main_large, key=lambda r: r["flop_per_s"])
    return {"chunk_frames": chunk, "graph_throughput": graph, "matmul_peaks": peaks,
            "operator_split": operators,
            "matmul_peak_flop_per_s": peak,
            "best_graph_flop_per_s": best["flop_per_s"], "best_graph_batch": best["batch"],
            "best_graph_file": best["file"], "best_fraction_of_peak": best["flop_per_s"] / peak,
            "large_batch_min": TARGET_LARGE_BATCH,
            "best_large_batch_fraction_of_peak": best_large["flop_per_s"] / peak,
            "shipped_file": main,
            "shipped_large_batch_fraction_of_peak": best_main["flop_per_s"] / peak,
            "shipped_large_batch_best": {"batch": best_main["batch"],
                                         "flop_per_s": best_main["flop_per_s"]},
            "optimisation_levels": optimisation_levels(
                files["ensemble_file"] or files["single"], providers, args.threads, n_times,
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
        rows.append({"level": level, "file": _rel(path), "frames_per_call": batch * n_times,
                     "frames_per_s": batch * n_times / seconds})
    return rows


# --------------------------------------------------------------------------- gicnet runs

def run_gicnet(model, label: str, pos, vel, duration_fs: float, dt_fs: float, counter,
               segment_fs: float | None = None) -> dict:
    """Unroll len(pos) trajectories; fs of trajectory per wall s (median of REPEATS if fast)."""
    walls, counts = [], []
    while len(walls) < (REPEATS if not walls or walls[0] < REPEAT_BELOW_S else 1):
        counter.reset()
        start = time.perf_counter()
        trajectories = model.propagate(pos, vel, duration_fs, dt_fs, segment_fs=segment_fs)
        walls.append(time.perf_counter() - start)
        counts.append({"calls": counter.calls, "starts": counter.starts,
                       "frames": counter.frames, "member_frames": counter.member_frames,
                       "flops": counter.flops, "uncounted_calls": counter.uncounted_calls})
    order = sorted(range(len(walls)), key=walls.__getitem__)
    pick = order[len(order) // 2]
    wall, count = walls[pick], counts[pick]
    simulated = sum(float(t.time_fs[-1]) for t in trajectories)
    info = trajectories[0].info
    return {"model": label, "members": model.n_members, "batch": len(pos),
            "duration_fs": duration_fs, "dt_fs": dt_fs, "wall_s": wall, "walls_s": walls,
            "repeats": len(walls), "segment_fs": info.get("segment_fs"),
            "restore_energy": info.get("restore_energy"),
            "reversal_share": info.get("reversal_share"),
            "fs_per_s": simulated / wall, "fs_per_s_per_trajectory": simulated / wall / len(pos),
            "network_calls": count["calls"], "network_starts": count["starts"],
            "network_frames": count["frames"], "network_member_frames": count["member_frames"],
            "network_flops": count["flops"], "uncounted_calls": count["uncounted_calls"],
            "times_per_start": count["frames"] / max(count["starts"], 1),
            "achieved_flop_per_s": count["flops"] / wall,
            "flops_per_simulated_fs": count["flops"] / simulated,
            "failed": sum("failure" in t.info for t in trajectories),
            "backtracks": sum(t.info.get("backtracks", 0) for t in trajectories),
            "segments_over_threshold": sum(len(t.info.get("segments_over_threshold", ()))
                                           for t in trajectories)}


def gicnet_runs(args, files: dict, initial, flops: dict | None) -> list[dict]:
    from benchmarks import hardware as hw
    from benchmarks.initial import batch_of
    from gicnet_runtime import load_model

    _, pos0, vel0 = initial

    def terms_for(members: int):
        if flops is None:
            return None
        if members == 1:
            return flops["files"]["single"]["terms"]
        ens = flops["files"].get("ensemble_file")
        if ens is not None and ens["architecture"]["n_members"] == members:
            return ens["terms"]
        return {k: v * members for k, v in flops["files"]["single"]["terms"].items()}

    variants = [("ensemble", lambda: load_model(files["load"], device=args.device,
                                                threads=args.threads),
                 _batches(args)),
                ("single", lambda: load_model(files["single"], device=args.device,
                                              threads=args.threads), _batches(args))]
    if files["ensemble_file"] is not None:
        variants.append(("members", lambda: load_model(files["members"], device=args.device,
                                                       threads=args.threads),
                         [int(b) for b in args.members_batches.split(",") if b]))
    if load_model(files["load"], device="cpu").description.reversal_share > 0:
        variants.append(("ensemble_no_reversal",
                         lambda: without_reversal(load_model(files["load"], device=args.device,
                                                             threads=args.threads)),
                         [int(b) for b in args.members_batches.split(",") if b]))
    rows = []
    with hw.NetworkCounter(terms_for) as counter:
        for label, make, sizes in variants:
            model = make()
            for size in sizes:
                pos, vel = batch_of(pos0, vel0, size)
                rows.append(run_gicnet(model, label, pos, vel, _duration(args, size),
                                       args.dt_fs, counter, args.segment_fs))
                print(_gicnet_line(rows[-1]), flush=True)
            del model
    return rows


def without_reversal(model):
    """``model`` unrolling as it did before the time-reversal correction (its metadata's
    share set to none in memory; the same graph)."""
    import dataclasses

    model.description = dataclasses.replace(model.description, unroll_reversal_share=None)
    return model


def _gicnet_line(r: dict) -> str:
    return (f"gicnet {r['model']:8s} ({r['members']} member{'s' * (r['members'] > 1)}) "
            f"B={r['batch']:5d} {r['duration_fs']:6.0f} fs: {r['fs_per_s']:12.1f} fs/s "
            f"({r['wall_s']:.2f} s, {r['achieved_flop_per_s'] / 1e9:.1f} GFLOP/s, "
            f"{r['backtracks']} backtracks)")


# --------------------------------------------------------------------------- the rest

def probe(args, what: str) -> dict:
    """Run :mod:`benchmarks.probe` in a fresh interpreter (median of REPEATS for imports)."""
    cmd = [sys.executable, "-m", "benchmarks.probe", what, "--device", args.device,
           "--threads", str(args.threads), "--batch", str(args.memory_batch),
           "--duration-fs", str(args.duration_fs), "--dt-fs", str(args.dt_fs)]
    if args.model_dir is not None:
        cmd += ["--model", str(args.model_dir)]
    runs = []
    for _ in range(REPEATS if what == "import" else 1):
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True,
                             env=dict(os.environ, PYTHONPATH=str(REPO)))
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {k: statistics.median(r[k] for r in runs) if isinstance(runs[0][k], float)
            else runs[0][k] for k in runs[0]}


def readme_section(args, user_env: dict) -> dict:
    """README's command, launched from a fresh small interpreter (``benchmarks.probe
    readme``) with the environment this process was started with: a child forked from
    this big process would inherit its peak RSS in ``ru_maxrss``."""
    cmd = [sys.executable, "-m", "benchmarks.probe", "readme",
           "--duration-fs", f"{args.readme_duration_fs:g}"]
    if args.model_dir is not None:
        cmd += ["--model", str(args.model_dir)]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True,
                         env=user_env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["shortened"] = args.readme_duration_fs != 10000
    result["model_override"] = None if args.model_dir is None else str(args.model_dir)
    print(f"README command ({result['how']}): {result['wall_s']:.1f} s wall, peak RSS "
          f"{result['peak_rss_MB']:.0f} MB ({result['peak_rss_MiB']:.0f} MiB), exit "
          f"{result['returncode']}, load {result['load_average_before'][0]:.2f} -> "
          f"{result['load_average_after'][0]:.2f}", flush=True)
    return result


def profile_section(args, files: dict, initial) -> dict:
    from benchmarks.profile import profile_split
    from gicnet_runtime import load_model

    model = load_model(files["load"], device=args.device, threads=args.threads)
    return profile_split(model, initial[1:],
                         [int(b) for b in args.profile_batches.split(",")],
                         [float(d) for d in args.profile_durations_fs.split(",")], args.dt_fs)


def dispatch_section(args, files: dict, results: dict) -> dict:
    from benchmarks.dispatch import dispatch_report, lines

    ani = next((b["fs_per_s"] for b in results.get("baselines", [])
                if b["baseline"] == "ani1x_ensemble"), None)
    report = dispatch_report(files["ensemble_file"], files["folder"] / "initial.extxyz",
                             args.threads, ani)
    print("\n".join(lines(report)), flush=True)
    return report


def ratios(gicnet: list[dict], baselines: list[dict]) -> dict:
    """Every gicnet row's and every MD row's fs/s over each MD row's fs/s, keyed
    'model/B=size' (gicnet) or 'md/<baseline>' -> baseline -> ratio."""
    out = {f"{g['model']}/B={g['batch']}": {b["baseline"]: g["fs_per_s"] / b["fs_per_s"]
                                           for b in baselines} for g in gicnet}
    out.update({f"md/{a['baseline']}": {b["baseline"]: a["fs_per_s"] / b["fs_per_s"]
                                        for b in baselines} for a in baselines})
    return out


def targets(results: dict) -> dict:
    """The issue's targets: value, target, met (None where not measured)."""
    baselines = {b["baseline"]: b["fs_per_s"] for b in results.get("baselines", [])}
    pick = {(g["model"], g["batch"]): g for g in results.get("gicnet", [])}
    out = {}
    for key, size, target in (("single_trajectory", 1, TARGET_SINGLE),
                              (f"batch_{TARGET_BATCH_SIZE}", TARGET_BATCH_SIZE, TARGET_BATCH)):
        row, single = pick.get(("ensemble", size)), pick.get(("single", size))
        for ref in ("ani1x_ensemble", "ani1x_ensemble_float32"):
            if ref in baselines and row:
                out[f"{key}_vs_{ref}"] = {
                    "value": row["fs_per_s"] / baselines[ref], "target": target,
                    "met": row["fs_per_s"] / baselines[ref] >= target,
                    "single_member_value": single["fs_per_s"] / baselines[ref] if single
                    else None, "unit": "x"}
    shown = {}
    for size in (1, TARGET_BATCH_SIZE):
        row = pick.get(("ensemble", size))
        if row and baselines:
            shown[f"ensemble_B={size}"] = {name: row["fs_per_s"] / fs
                                           for name, fs in baselines.items()}
    if shown:
        out["ratios_against_every_baseline"] = {"value": None, "target": None, "met": True,
                                                "unit": "x", "what": "shown", "rows": shown}
    per_fs = results.get("flops_per_fs", {})
    if "ensemble" in per_fs:
        ani = per_fs.get("md_ani1x_ensemble", {}).get("flops_per_fs")
        out["flops_per_simulated_fs"] = {
            "value": per_fs["ensemble"]["flops_per_fs"], "target": None, "met": True,
            "unit": "FLOP/fs", "what": "shown (shipped ensemble, one trajectory)",
            "single_member": per_fs.get("single", {}).get("flops_per_fs"),
            "ani1x_ensemble_network": ani}
    profile = results.get("profile")
    if profile and profile.get("runs"):
        out["profile_split"] = {
            "value": None, "target": None, "met": True, "unit": "fraction", "what": "shown",
            "network_fraction": {str(r["batch"]): r["fractions_corrected"]["network"]
                                 for r in profile["runs"]}}
    hw = results.get("hardware")
    if hw:
        fraction = hw["shipped_large_batch_fraction_of_peak"]
        inside = [g["achieved_flop_per_s"] / hw["matmul_peak_flop_per_s"]
                  for g in results.get("gicnet", []) if g["batch"] >= TARGET_LARGE_BATCH
                  and g["model"] == "ensemble"]
        out["fraction_of_matmul_peak"] = {
            "value": fraction, "target": TARGET_PEAK_FRACTION,
            "met": fraction >= TARGET_PEAK_FRACTION, "unit": "fraction",
            "what": f"bare graph of the shipped file ({hw['shipped_file']}), best batch >= "
                    f"{TARGET_LARGE_BATCH}, over the best measured matmul",
            "inside_propagate": max(inside) if inside else None}
    readme = results.get("readme")
    if readme:
        judged = not readme.get("shortened") and not readme.get("model_override")
        note = None if judged else "shortened run or another model"
        if readme["returncode"] != 0:
            judged, note = False, f"the command failed (exit {readme['returncode']})"
        out["readme_peak_rss"] = {
            "value": readme["peak_rss_MB"], "target": TARGET_README_RSS_MB, "unit": "MB",
            "met": (readme["peak_rss_MB"] <= TARGET_README_RSS_MB) if judged else None,
            "note": note}
        out["readme_wall_time"] = {"value": readme["wall_s"], "target": None, "unit": "s",
                                   "met": (readme["returncode"] == 0) if judged else None,
                                   "what": "measured (no bound)", "note": note}
    return out


def baselines_section(args, initial) -> list[dict]:
    if args.baselines_from is not None:
        rows = json.loads(args.baselines_from.read_text())["baselines"]
        return [dict(r, source=str(args.baselines_from)) for r in rows]
    if "md" not in args.sections:
        return []
    from benchmarks import md

    numbers, pos, vel = initial
    rows = []
    for name in md.BASELINES:
        rows += md.run_baselines([name], numbers, pos[0], vel[0], args.md_duration_fs,
                                 args.dt_fs, args.threads)
        r = rows[-1]
        print(f"MD {r['baseline']:24s} {r['duration_fs']:6.0f} fs: {r['fs_per_s']:9.1f} fs/s "
              f"({r['ms_per_step']:.2f} ms/step, drift {r['total_energy_drift_eV']:+.4f} eV)",
              flush=True)
    return rows


def report(results: dict) -> None:
    """The summary on stdout (the tables: python -m benchmarks.table)."""
    for name, row in results.get("ratios", {}).items():
        if row:
            print(f"ratio {name:30s} " + "  ".join(f"{b}: {r:8.2f}x" for b, r in row.items()))
    for name, f in results.get("flops_per_fs", {}).items():
        print(f"FLOPs per simulated fs {name:28s} {f['flops_per_fs'] / 1e6:10.3f} MFLOP/fs")
    for name, t in results.get("targets", {}).items():
        if t["value"] is None:
            continue
        target = "" if t["target"] is None else f" (target {t['target']:g})"
        verdict = ("shown" if str(t.get("what", "")).startswith("shown")
                   else {True: "met", False: "NOT met", None: "not judged"}[t["met"]])
        print(f"target {name:40s} {t['value']:10.4g} {t['unit']}{target}: {verdict}"
              + (f" ({t['note']})" if t.get("note") else ""))
    mem, imp = results.get("memory"), results.get("import")
    if mem:
        print(f"peak memory (B={mem['batch']}, {mem['duration_fs']:g} fs, fresh process): "
              f"{mem['maxrss_peak_MiB']:.0f} MiB RSS, "
              f"tracemalloc {mem['tracemalloc_peak_MiB']:.0f} MiB")
    if imp:
        print(f"import gicnet_runtime {imp['import_gicnet_runtime_s'] * 1e3:.0f} ms; with "
              f"onnxruntime {imp['import_load_model_with_onnxruntime_s'] * 1e3:.0f} ms; "
              f"opening the model {imp['open_shipped_model_s'] * 1e3:.0f} ms")
    print("section wall times: " + ", ".join(f"{k} {v:.0f} s"
                                           for k, v in results["section_wall_s"].items()))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    user_env = fix_threads(args.threads)
    files = shipped_files(args.model_dir)
    est = estimate_seconds(args, files["ensemble_file"] is not None)
    print("\n".join(plan_lines(args, est)), flush=True)
    if args.estimate:
        return {"estimate_s": est}
    from benchmarks.initial import load_initial
    from gicnet_runtime import load_model
    from gicnet_runtime.core.session import requested_providers

    started = time.perf_counter()
    section_wall: dict[str, float] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        value = fn()
        section_wall[name] = time.perf_counter() - t0
        print(f"-- {name}: {section_wall[name]:.0f} s (total {time.perf_counter() - started:.0f}"
              f" s of ~{est['total']:.0f} s estimated)", flush=True)
        return value

    results = {"machine": machine(args), "arguments": {k: str(v) for k, v in vars(args).items()},
               "estimate_s": est, "section_wall_s": section_wall}
    initial = load_initial(files["folder"] / "initial.extxyz")
    shipped = load_model(files["load"], device=args.device, threads=args.threads)
    facts = model_facts(shipped)
    del shipped
    providers = facts.get("providers") or requested_providers(args.device)
    results["machine"]["providers"] = providers
    results["models"] = {"shipped": facts,
                         "ensemble_file": None if files["ensemble_file"] is None
                         else _rel(files["ensemble_file"]),
                         "member_files": [_rel(p) for p in files["members"]],
                         "single": _rel(files["single"])}
    segment = args.segment_fs or facts["default_segment_fs"]
    results["baselines"] = (timed("md", lambda: baselines_section(args, initial))
                            if "md" in args.sections or args.baselines_from else [])
    flops = None
    if {"flops", "hardware", "gicnet"} & set(args.sections):
        flops = timed("flops", lambda: flops_section(args, files, segment))
        results["flops"] = flops
        results["flops_per_fs"] = flops_per_fs_section(flops, facts["n_members"] or 1,
                                                       results["baselines"])
    if "hardware" in args.sections:
        results["hardware"] = timed("hardware", lambda: hardware_section(
            args, files, initial, flops, providers))
    if "gicnet" in args.sections:
        results["gicnet"] = timed("gicnet", lambda: gicnet_runs(args, files, initial, flops))
        results["ratios"] = ratios(results["gicnet"], results["baselines"])
    if "memory" in args.sections:
        results["memory"] = timed("memory", lambda: probe(args, "memory"))
        results["import"] = probe(args, "import")
    if "readme" in args.sections:
        results["readme"] = timed("readme", lambda: readme_section(args, user_env))
    if "profile" in args.sections:
        results["profile"] = timed("profile", lambda: profile_section(args, files, initial))
    if ("dispatch" in args.sections and files["ensemble_file"] is not None
            and args.device != "cuda"):
        results["dispatch"] = timed("dispatch", lambda: dispatch_section(args, files, results))
    results["targets"] = targets(results)
    results["machine"]["load_average_end"] = os.getloadavg()
    results["total_wall_s"] = time.perf_counter() - started
    report(results)
    out = args.out or REPO / "benchmarks" / "results" / f"{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwritten {out} ({results['total_wall_s']:.0f} s; estimated {est['total']:.0f} s)")
    return results


if __name__ == "__main__":
    main()
