"""Where ``Model.propagate``'s time goes: network, restoration, checks, copies/bookkeeping.

    python -m benchmarks.profile [--batches 1,256] [--durations-fs 5000,500] [--out FILE]

Runs ``Model.propagate`` of the shipped model (``load_model(None, device="cpu",
threads=1)``) under cProfile and groups its time into

* **network**: onnxruntime's ``InferenceSession.run`` (the graph itself);
* **restoration**: ``gicnet_runtime.unroll.momentum`` (centre of mass, momenta),
  ``gicnet_runtime.unroll.energy_restore`` and ``gicnet_runtime.unroll.reversal`` (the
  time-reversal correction's numpy work; its two graph calls are network), and any runtime
  function named ``*restor*``;
* **checks**: ``gicnet_runtime.core.ensemble`` (energy errors, ranking) and runtime functions
  named ``*fail*``, ``*check*``, ``*error*``, ``*extent*``, ``*finite*`` (failure checks in
  propagate, the input check);
* **copies/bookkeeping**: the rest of the runtime's known modules (session: dtype casts and
  chunk assembly; propagate, unroll, model, trajectory: stacking, Python loops);
* **other**: runtime modules this mapping does not know, and time outside any runtime
  function; the top functions landing here are listed (``unknown``) so that
  :data:`MODULES` can be adjusted after a refactor.

numpy, Python and other library functions have no category of their own: their time goes
to the innermost runtime function that called them (per call edge: cProfile records
one level of callers, so a library function called from several categories is split in
proportion to the time each caller spent in it).  A few runtime helpers used by several
categories (:data:`NEUTRAL`) are treated the same way.

cProfile slows Python code (not onnxruntime's), so every run is also timed without the
profiler; ``fractions_corrected`` keeps the network's seconds and shrinks the rest to fit
the unprofiled wall time.  The result is printed as a markdown table and written as JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path

CATEGORIES = ("network", "restoration", "checks", "copies/bookkeeping", "other")
#: Runtime modules (file stems anywhere under gicnet_runtime/) and their category.
MODULES = {
    "momentum": "restoration", "energy_restore": "restoration", "internal": "restoration",
    "reversal": "restoration",
    "ensemble": "checks",
    "session": "copies/bookkeeping", "propagate": "copies/bookkeeping",
    "segment": "copies/bookkeeping", "state": "copies/bookkeeping",
    "sinks": "copies/bookkeeping", "model": "copies/bookkeeping",
    "trajectory": "copies/bookkeeping", "timegrid": "copies/bookkeeping",
    "description": "copies/bookkeeping", "checkpoint": "copies/bookkeeping",
    "icdef": "copies/bookkeeping", "errors": "copies/bookkeeping",
    "mechanics": "copies/bookkeeping", "units": "copies/bookkeeping",
    "__init__": "copies/bookkeeping", "_lazy": "copies/bookkeeping",
}
#: Function-name fragments of runtime functions that decide the category over the module.
NAME_RULES = (("restor", "restoration"), ("fail", "checks"), ("check", "checks"),
              ("error", "checks"), ("extent", "checks"), ("finite", "checks"))
#: Runtime helpers that several categories use: they take their caller's category.
NEUTRAL = {("mechanics", "kinetic_energy_eV"), ("mechanics", "centre_of_mass"),
           ("mechanics", "linear_momentum"), ("mechanics", "angular_momentum"),
           ("mechanics", "relative_positions"), ("mechanics", "inertia_of"),
           ("mechanics", "cross")}
RUNTIME_DIR = "gicnet_runtime"
#: Functions listed per run.
TOP = 15


def classify(func: tuple[str, int, str]) -> str | None:
    """The category of one cProfile function key (file, line, name); None: the caller's."""
    filename, _, name = func
    if "onnxruntime" in filename.replace("\\", "/").split("/") or (
            filename == "~" and "onnxruntime" in name):
        return "network"
    path = Path(filename)
    if RUNTIME_DIR not in path.parts or path.suffix != ".py":
        return None
    module = path.stem
    if (module, name) in NEUTRAL:
        return None
    for fragment, category in NAME_RULES:
        if fragment in name.lower():
            return category
    return MODULES.get(module, "other")


def label(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":
        return name
    path = Path(filename)
    return f"{path.parent.name}/{path.name}:{line}:{name}"


def split(stats: dict) -> dict:
    """Seconds per category from ``pstats.Stats(...).stats`` (see the module docstring),
    the top functions by self time and the top ones that land in "other"."""
    own = {f: classify(f) for f in stats}
    context: dict = {}
    for f, cat in own.items():
        context[f] = {cat: 1.0} if cat else {"other": 1.0}
    for _ in range(50):  # propagate callers' categories to library functions (fixed point)
        changed = False
        for f, (_, _, _, _, callers) in stats.items():
            if own[f] or not callers:
                continue
            weights = defaultdict(float)
            total = sum(edge[3] for edge in callers.values()) or 1.0
            for g, edge in callers.items():
                for cat, share in context.get(g, {"other": 1.0}).items():
                    weights[cat] += share * (edge[3] or total / len(callers)) / total
            norm = sum(weights.values()) or 1.0
            new = {c: w / norm for c, w in weights.items()}
            if any(abs(new.get(c, 0) - context[f].get(c, 0)) > 1e-9 for c in CATEGORIES):
                context[f], changed = new, True
        if not changed:
            break
    seconds = dict.fromkeys(CATEGORIES, 0.0)
    into_other = defaultdict(float)
    for f, (_, _, tt, _, callers) in stats.items():
        if own[f]:
            seconds[own[f]] += tt
            if own[f] == "other":
                into_other[f] += tt
            continue
        edges = callers.items() if callers else [(None, (0, 0, tt, tt))]
        edge_total = sum(e[2] for _, e in edges)
        for g, edge in edges:
            part = edge[2] if edge_total > 0 else tt / len(edges)
            for cat, share in (context.get(g, {"other": 1.0}) if g else {"other": 1.0}).items():
                seconds[cat] += part * share
                if cat == "other":
                    into_other[f] += part * share
    by_self = sorted(stats.items(), key=lambda kv: -kv[1][2])[:TOP]
    return {"seconds": seconds,
            "top_self_time": [{"function": label(f), "category": own[f] or "(caller's)",
                               "self_s": v[2], "cumulative_s": v[3], "calls": v[1]}
                              for f, v in by_self],
            "unknown": [{"function": label(f), "seconds": s}
                        for f, s in sorted(into_other.items(), key=lambda kv: -kv[1])[:TOP]
                        if s > 0]}


def profile_run(model, positions, velocities, duration_fs: float, dt_fs: float) -> dict:
    """One ``propagate`` timed plainly, then one under cProfile; the split of the latter."""
    start = time.perf_counter()
    model.propagate(positions, velocities, duration_fs, dt_fs)
    plain = time.perf_counter() - start
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    model.propagate(positions, velocities, duration_fs, dt_fs)
    profiler.disable()
    profiled = time.perf_counter() - start
    stats = {f: v for f, v in pstats.Stats(profiler).stats.items() if "_lsprof" not in f[2]}
    result = split(stats)
    total = sum(result["seconds"].values())
    network = result["seconds"]["network"]
    result.update({
        "batch": int(len(positions)), "duration_fs": float(duration_fs), "dt_fs": float(dt_fs),
        "wall_s": plain, "wall_s_profiled": profiled, "profiled_total_s": total,
        "fractions": {c: s / total for c, s in result["seconds"].items()},
        "network_calls": sum(v[1] for f, v in stats.items()
                             if classify(f) == "network" and f[0] != "~" and f[2] == "run")})
    rest_plain = max(plain - network, 0.0)
    rest_profiled = max(total - network, 1e-12)
    corrected = {c: (s if c == "network" else s * rest_plain / rest_profiled)
                 for c, s in result["seconds"].items()}
    norm = sum(corrected.values()) or 1.0
    result["fractions_corrected"] = {c: s / norm for c, s in corrected.items()}
    return result


def profile_split(model, initial, batches: list[int], durations_fs: list[float],
                  dt_fs: float = 0.5) -> dict:
    """:func:`profile_run` for each batch size (initial: (pos, vel) of the example starts)."""
    from benchmarks.initial import batch_of

    runs = []
    for size, duration in zip(batches, durations_fs):
        pos, vel = batch_of(*initial, size)
        runs.append(profile_run(model, pos, vel, duration, dt_fs))
        print(split_line(runs[-1]), flush=True)
    return {"method": "cProfile of Model.propagate; categories of benchmarks/profile.py "
                      "(fractions of the profiled time; fractions_corrected: the network's "
                      "seconds kept, the rest scaled to the unprofiled wall)",
            "n_members": getattr(model, "n_members", None), "runs": runs}


def split_line(run: dict) -> str:
    parts = ", ".join(f"{c} {run['fractions_corrected'][c]:.0%}" for c in CATEGORIES)
    return (f"profile B={run['batch']} x {run['duration_fs']:g} fs: {parts} "
            f"(wall {run['wall_s']:.2f} s, profiled {run['wall_s_profiled']:.2f} s)")


def markdown(result: dict) -> list[str]:
    """The split as a markdown table (corrected fractions; profiled ones in brackets)."""
    lines = ["| trajectories | fs each | wall s (profiled) | " + " | ".join(CATEGORIES) + " |",
             "| ---: | ---: | ---: | " + " | ".join("---:" for _ in CATEGORIES) + " |"]
    for r in result["runs"]:
        cells = " | ".join(f"{r['fractions_corrected'][c]:.0%} ({r['fractions'][c]:.0%})"
                           for c in CATEGORIES)
        lines.append(f"| {r['batch']} | {r['duration_fs']:g} | {r['wall_s']:.2f} "
                     f"({r['wall_s_profiled']:.2f}) | {cells} |")
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,256")
    parser.add_argument("--durations-fs", default="5000,500")
    parser.add_argument("--dt-fs", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default=None, help="model path (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=None, help="JSON (default: print only)")
    args = parser.parse_args(argv)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    from benchmarks.initial import load_initial
    from gicnet_runtime import load_model
    from gicnet_runtime.core.model import DEFAULT_MODEL_DIR

    model = load_model(args.model, device="cpu", threads=args.threads)
    _, pos, vel = load_initial(DEFAULT_MODEL_DIR / "initial.extxyz")
    batches = [int(b) for b in args.batches.split(",")]
    durations = [float(d) for d in args.durations_fs.split(",")]
    if len(durations) != len(batches):
        parser.error("give one duration per batch size")
    result = profile_split(model, (pos, vel), batches, durations, args.dt_fs)
    print("\n".join(markdown(result)))
    for r in result["runs"]:
        print(f"B={r['batch']}: top 'other': " + ("; ".join(
            f"{u['function']} {u['seconds'] * 1e3:.1f} ms" for u in r["unknown"][:5])
            or "none"))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    sys.exit(main() and 0)
