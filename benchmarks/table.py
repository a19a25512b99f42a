"""Markdown tables for BENCHMARKS.md from one or more result files of benchmarks.speed.

    python -m benchmarks.table benchmarks/results/cpu.json [benchmarks/results/h100.json]

Tables: speed (every row against every MD baseline), FLOPs, the bare graph against the
matmul peak, FLOP/s inside propagate, memory and README's command, the profile split,
and the targets (from the first file).  Sections a file lacks are left out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: Column labels of the MD baselines (benchmarks.md.BASELINES), in their order.
BASELINE_LABELS = {"ani1x_ensemble": "ANI-1x ens. f64", "ani1x_ensemble_float32": "ANI-1x ens. f32",
                   "ani1x_single": "ANI-1x single f64", "ani1x_single_float32": "ANI-1x single f32",
                   "gfn2_xtb": "GFN2-xTB"}
ENGINE_LABELS = {"ani1x_ensemble": "MD ANI-1x ensemble (8), float64",
                 "ani1x_ensemble_float32": "MD ANI-1x ensemble (8), float32",
                 "ani1x_single": "MD ANI-1x single model, float64",
                 "ani1x_single_float32": "MD ANI-1x single model, float32",
                 "gfn2_xtb": "MD GFN2-xTB (tblite)"}
MODEL_LABELS = {"ensemble": "gicnet shipped ensemble", "single": "gicnet one member",
                "members": "gicnet member files as separate sessions",
                "ensemble_no_reversal": "gicnet shipped ensemble without the time-reversal "
                                        "correction"}


def _ratio(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def _baselines(results: dict) -> list[dict]:
    return list(results.get("baselines", []))


def speed_table(files: list[tuple[str, dict]]) -> list[str]:
    """One row per MD baseline and per gicnet run: fs/s and its ratio to every baseline."""
    names = [b["baseline"] for b in _baselines(files[0][1])]
    head = ["machine", "engine (members)", "trajectories", "fs simulated", "fs/s"]
    head += [f"x {BASELINE_LABELS.get(n, n)}" for n in names]
    lines = ["| " + " | ".join(head) + " |",
             "| --- | --- | " + " | ".join("---:" for _ in head[2:]) + " |"]
    for label, r in files:
        base = {b["baseline"]: b["fs_per_s"] for b in _baselines(r)}

        def cells(fs_per_s: float) -> str:
            return " | ".join(_ratio(fs_per_s / base[n]) if n in base else "n/a" for n in names)

        for b in _baselines(r):
            if "source" in b:
                continue
            lines.append(f"| {label} | {ENGINE_LABELS.get(b['baseline'], b['baseline'])} | 1 | "
                         f"{b['duration_fs']:g} | {b['fs_per_s']:,.1f} | {cells(b['fs_per_s'])} |")
        for g in r.get("gicnet", []):
            segment = f", {g['segment_fs']:g} fs segments" if g.get("segment_fs") else ""
            model = MODEL_LABELS.get(g["model"], f"gicnet {g['model']}")
            lines.append(f"| {label} | {model} ({g['members']}{segment}) | {g['batch']} | "
                         f"{g['duration_fs']:g} | {g['fs_per_s']:,.1f} | {cells(g['fs_per_s'])} |")
    return lines


def flops_table(files: list[tuple[str, dict]]) -> list[str]:
    """FLOPs per start, per frame, per predicted frame at K and per simulated fs."""
    lines = ["| machine | what | members | MFLOP per start | MFLOP per frame | K | "
             "MFLOP per predicted frame | MFLOP per simulated fs | graph = analytic |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for label, r in files:
        flops = r.get("flops")
        if not flops or "files" not in flops:
            continue
        per_fs = r.get("flops_per_fs", {})
        for kind, rep in flops["files"].items():
            model = "ensemble" if kind == "ensemble_file" else "single"
            fs = per_fs.get(model, {}).get("flops_per_fs")
            agree = rep.get("graph_and_analytic_agree")
            agree = ("yes" + (f" ({rep['analytic_variant_matching_graph']})"
                              if rep.get("analytic_variant_matching_graph") else "")
                     if agree else "NO" if agree is not None else "n/a")
            t = rep["terms"]
            lines.append(f"| {label} | {rep['file']} | {rep['architecture']['n_members']} | "
                         f"{t['per_start'] / 1e6:.4f} | {t['per_frame'] / 1e6:.4f} | "
                         f"{rep['n_times']} | {rep['flops_per_frame'] / 1e6:.4f} | "
                         f"{'' if fs is None else f'{fs / 1e6:.3f}'} | {agree} |")
        if "ensemble_file" not in flops["files"] and "ensemble" in per_fs:
            e = per_fs["ensemble"]
            lines.append(f"| {label} | shipped ensemble (member files) | {e['members']} | | | "
                         f"{flops['n_times']} | | {e['flops_per_fs'] / 1e6:.3f} | |")
        for name, row in per_fs.items():
            if name.startswith("md_"):
                base = name[3:]
                lines.append(f"| {label} | {ENGINE_LABELS.get(base, base)}: network "
                             f"(force calls, AEV not counted) | | | | | | "
                             f"{row['flops_per_fs'] / 1e6:.3f} | |")
    return lines


def hardware_table(files: list[tuple[str, dict]]) -> list[str]:
    """Bare-graph throughput against the measured matmul peak."""
    lines = ["| machine | file | frames per call (B x K) | frames/s | GFLOP/s | "
             "matmul peak GFLOP/s | fraction |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for label, r in files:
        hw = r.get("hardware")
        if not hw:
            continue
        peak = hw["matmul_peak_flop_per_s"]
        for g in hw["graph_throughput"]:
            kind = {"single": "one member", "ensemble_file": "ensemble file"}.get(
                g.get("file", ""), g.get("file", ""))
            lines.append(f"| {label} | {kind} | {g['batch']} x {g['n_times']} | "
                         f"{g['frames_per_s']:,.0f} | {g['flop_per_s'] / 1e9:,.1f} | "
                         f"{peak / 1e9:,.1f} | {g['flop_per_s'] / peak:.0%} |")
    return lines


def peaks_table(files: list[tuple[str, dict]]) -> list[str]:
    lines = ["| machine | matmul (rows x inner -> cols) | engine | GFLOP/s |",
             "| --- | --- | --- | ---: |"]
    for label, r in files:
        for p in (r.get("hardware") or {}).get("matmul_peaks", []):
            rows, inner, cols = p["shape"]
            lines.append(f"| {label} | {rows} x {inner} -> {cols} | {p['engine']} | "
                         f"{p['flop_per_s'] / 1e9:,.1f} |")
    return lines


def operators_table(files: list[tuple[str, dict]], top: int = 8) -> list[str]:
    """Kernel time per operator type of the bare graph (onnxruntime's profiler)."""
    lines = ["| machine | file, call | MatMul/Gemm share | top operators (share of kernel "
             "time) |", "| --- | --- | ---: | --- |"]
    for label, r in files:
        ops = (r.get("hardware") or {}).get("operator_split")
        if not ops or "fractions" not in ops:
            continue
        top_ops = ", ".join(f"{op} {f:.0%}" for op, f in list(ops["fractions"].items())[:top])
        lines.append(f"| {label} | {Path(ops['file']).name}, {ops['batch']} x {ops['n_times']} "
                     f"({ops['nodes_after_optimisation']} nodes) | {ops['matmul_fraction']:.0%} "
                     f"| {top_ops} |")
    return lines


def propagate_flops_table(files: list[tuple[str, dict]]) -> list[str]:
    """FLOP/s inside propagate (network FLOPs counted per call / wall time)."""
    lines = ["| machine | model (members) | trajectories | GFLOP/s in propagate | "
             "fraction of matmul peak | MFLOP per simulated fs (measured) | times per start "
             "| backtracks |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for label, r in files:
        peak = (r.get("hardware") or {}).get("matmul_peak_flop_per_s")
        for g in r.get("gicnet", []):
            if "network_flops" not in g:
                continue
            fraction = f"{g['achieved_flop_per_s'] / peak:.0%}" if peak else "n/a"
            lines.append(f"| {label} | {g['model']} ({g['members']}) | {g['batch']} | "
                         f"{g['achieved_flop_per_s'] / 1e9:,.1f} | {fraction} | "
                         f"{g['flops_per_simulated_fs'] / 1e6:.3f} | {g['times_per_start']:.1f} "
                         f"| {g['backtracks']} |")
    return lines


def memory_table(files: list[tuple[str, dict]]) -> list[str]:
    lines = ["| machine | what | wall s | peak RSS MB (MiB) | notes |",
             "| --- | --- | ---: | ---: | --- |"]
    for label, r in files:
        readme = r.get("readme")
        if readme:
            load = (f"load {readme['load_average_before'][0]:.2f} -> "
                    f"{readme['load_average_after'][0]:.2f}; {readme['how']}; "
                    f"CPU {readme['cpu_utilisation']:.2f} cores")
            if readme.get("shortened") or readme.get("model_override"):
                load += "; SHORTENED or another model"
            lines.append(f"| {label} | `{readme['command']}` (README's first command) | "
                         f"{readme['wall_s']:.1f} | {readme['peak_rss_MB']:.0f} "
                         f"({readme['peak_rss_MiB']:.0f}) | {load} |")
        mem = r.get("memory")
        if mem:
            lines.append(f"| {label} | propagate {mem['batch']} x {mem['duration_fs']:g} fs, "
                         f"fresh process ({mem['members']} members) | | "
                         f"{mem['maxrss_peak_MiB'] * 2**20 / 1e6:.0f} "
                         f"({mem['maxrss_peak_MiB']:.0f}) | tracemalloc peak "
                         f"{mem['tracemalloc_peak_MiB']:.0f} MiB; positions+velocities kept "
                         f"{mem['result_positions_velocities_MiB']:.0f} MiB |")
        imp = r.get("import")
        if imp:
            lines.append(f"| {label} | import gicnet_runtime / with onnxruntime / open the "
                         f"model | {imp['import_gicnet_runtime_s']:.3f} / "
                         f"{imp['import_load_model_with_onnxruntime_s']:.3f} / "
                         f"{imp['open_shipped_model_s']:.3f} | "
                         f"{imp['maxrss_after_open_MiB'] * 2**20 / 1e6:.0f} "
                         f"({imp['maxrss_after_open_MiB']:.0f}) | after opening |")
    return lines


def profile_table(files: list[tuple[str, dict]]) -> list[str]:
    from benchmarks.profile import markdown

    lines = []
    for label, r in files:
        if r.get("profile"):
            table = markdown(r["profile"])
            if not lines:
                lines += ["| machine " + table[0], "| --- " + table[1]]
            lines += [f"| {label} " + row for row in table[2:]]
    return lines


def targets_table(results: dict) -> list[str]:
    """Met / not met with the numbers (the first file's targets)."""
    t = results.get("targets", {})
    lines = ["| target | reached | met |", "| --- | --- | --- |"]

    def verdict(*entries) -> str:
        values = [e.get("met") for e in entries if e]
        if not values or any(v is None for v in values):
            return "not judged"
        return "yes" if all(values) else "no" if not any(values) else "partly"

    for key, text in (("single_trajectory", "one trajectory >= 300x ANI-1x-ensemble MD"),
                      ("batch_256", "256 trajectories >= 3000x aggregate")):
        f64 = t.get(f"{key}_vs_ani1x_ensemble", t.get(key))
        f32 = t.get(f"{key}_vs_ani1x_ensemble_float32")
        if not f64 and not f32:
            continue
        parts = []
        for name, e in (("float64", f64), ("float32", f32)):
            if e and "value" not in e:  # results of the earlier benchmarks.speed
                e["value"] = e.get("ratio_vs_ani1x_ensemble", float("nan"))
            if e:
                single = (f", {_ratio(e['single_member_value'])}x one member"
                          if e.get("single_member_value") else "")
                parts.append(f"{_ratio(e['value'])}x ensemble{single} (vs {name} ANI-1x)")
        lines.append(f"| {text} | {'; '.join(parts)} | {verdict(f64, f32)} |")
    shown = t.get("ratios_against_every_baseline")
    if shown:
        parts = []
        for key, row in shown["rows"].items():
            cells = ", ".join(f"{_ratio(v)}x {BASELINE_LABELS.get(n, n)}" for n, v in row.items()
                              if n != "ani1x_ensemble")
            parts.append(f"{key.replace('ensemble_', 'ensemble ')}: {cells}")
        lines.append("| ratios against single-model ANI-1x and GFN2-xTB MD; float32 ANI-1x "
                     f"beside float64 | {'; '.join(parts)} | shown |")
    per_fs = t.get("flops_per_simulated_fs")
    if per_fs:
        ani = per_fs.get("ani1x_ensemble_network")
        versus = (f"; ANI-1x ensemble MD's networks {ani / 1e6:.1f} MFLOP/fs "
                  f"({ani / per_fs['value']:,.0f}x more)" if ani else "")
        single = (f", one member {per_fs['single_member'] / 1e6:.3f}"
                  if per_fs.get("single_member") else "")
        lines.append(f"| FLOPs per simulated fs | shipped ensemble {per_fs['value'] / 1e6:.3f} "
                     f"MFLOP/fs{single}{versus} | shown |")
    prof = t.get("profile_split")
    if prof:
        net = ", ".join(f"{v:.0%} at {b} trajector{'y' if b == '1' else 'ies'}"
                        for b, v in prof["network_fraction"].items())
        lines.append(f"| profile split (network, restoration, checks, copies) | network {net} "
                     "(table above) | shown |")
    peak = t.get("fraction_of_matmul_peak")
    if peak:
        inside = (f"; {peak['inside_propagate']:.0%} inside propagate"
                  if peak.get("inside_propagate") is not None else "")
        lines.append(f"| >= 50 % of the measured matmul FLOP/s at large batch | "
                     f"{peak['value']:.0%} ({peak.get('what', 'bare graph')}){inside} | "
                     f"{verdict(peak)} |")
    rss = t.get("readme_peak_rss")
    if rss:
        note = f" ({rss['note']})" if rss.get("note") else ""
        lines.append(f"| README's first command (10 x 10 ps): peak RSS <= 200 MB | "
                     f"{rss['value']:.0f} MB{note} | {verdict(rss)} |")
    wall = t.get("readme_wall_time")
    if wall:
        readme = results.get("readme", {})
        load = (f", load {readme['load_average_before'][0]:.2f} -> "
                f"{readme['load_average_after'][0]:.2f}" if readme else "")
        note = f" ({wall['note']})" if wall.get("note") else ""
        lines.append(f"| README's first command: wall time measured on the 2-core machine | "
                     f"{wall['value']:.1f} s{load}{note} | "
                     f"{'measured' if wall.get('met') else verdict(wall)} |")
    return lines if len(lines) > 2 else []


def main(argv: list[str] | None = None) -> None:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    files = [(p.stem, json.loads(p.read_text())) for p in paths]
    sections = [("Speed", speed_table(files)), ("FLOPs", flops_table(files)),
                ("Bare graph against the matmul peak", hardware_table(files)),
                ("Matmul probes", peaks_table(files)),
                ("Bare graph: kernel time per operator (onnxruntime's profiler)",
                 operators_table(files)),
                ("Inside propagate", propagate_flops_table(files)),
                ("Memory and README's command", memory_table(files)),
                ("Where propagate's time goes (overhead-corrected; cProfile's own in brackets)",
                 profile_table(files)),
                ("Targets", targets_table(files[0][1]))]
    for title, lines in sections:
        if len(lines) > 2:
            print(f"\n#### {title}\n")
            print("\n".join(lines))


if __name__ == "__main__":
    main()
