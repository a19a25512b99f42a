"""What the shipped azobenzene model says about the isomerization, and how far to trust it.

    python recipes/azobenzene_insight.py    # or make azobenzene-insight (+ predictability)
    # -> docs/eval/azobenzene/insight.json, docs/azobenzene_*.png

After ``make azobenzene-data`` and ``make azobenzene-model``.  Four measurements:

1. **Outcomes** (``outcomes``): from every held-out release frame (the barrier region, see
   ``recipes/azobenzene_data.py``) the model unrolls ``half_fs`` forward, and ``half_fs``
   backward (velocities reversed), as the reference did.  Each run's isomer is read off its
   CNNC dihedral over the last 10 fs (``gicnet_runtime.analysis.isomers.outcome``); a run
   the runtime flags as unphysical has none.  Reported: agreement with the reference run
   from the same start, and the cis fraction of model and reference with binomial standard
   errors.  ``--choose-segment`` compares unrolling segments the same way on the training
   run's validation trajectories (how the recipe's segment was chosen).
2. **Attributions** (``attributions``): integrated gradients of the CNNC dihedral at
   t = 10 fs (``gicnet_runtime.analysis.explain``) from frames ``LEAD_FS`` before each
   reference transition (the last crossing of CNNC = 90°), over every reactive trajectory
   of both splits, aggregated per input and per kind with spreads over frames and members.
   Every frame passes the completeness check (``COMPLETENESS_LIMIT``, after a retry with
   more steps) or is left out and listed.  The main setting is the seed's: 10 fs lead, the
   trans minimum at rest as baseline, 100 steps.  Variants: the frame's own structure at
   rest as baseline, and leads of 5 and 20 fs.
3. **Cross-check** (``cross_check``): in the reference trajectories themselves, which
   internal coordinates move more than usual in the 10 fs before a transition (against
   windows elsewhere in the same trajectories); compared with the attributions' ranking.
4. **Plots**: ``docs/azobenzene_attributions.png`` (largest inputs, spreads),
   ``docs/azobenzene_kinds.png`` (per-kind shares per variant) and
   ``docs/azobenzene_outcomes.png`` (CNNC and CNN of model and reference, held-out starts).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing gicnet
sys.path.insert(0, str(ROOT / "recipes"))

import azobenzene_data  # noqa: E402
import azobenzene_scan  # noqa: E402

from gicnet_runtime.analysis import isomers  # noqa: E402
from gicnet_runtime.core.internal import Coordinate, angles, wrap_angle  # noqa: E402

DATA = ROOT / "data" / "azobenzene"
MODEL = ROOT / "exported" / "azobenzene"
#: Where the measurements go (docs/azobenzene.md reads them).
EVAL = ROOT / "docs" / "eval" / "azobenzene"
CNNC = Coordinate("dihedral", azobenzene_scan.CNNC)
#: The CNN angle held during the data's restrained equilibration (the inverting N).
CNN = azobenzene_scan.CNN[0]
#: Explained time within the segment, fs (the seed's).
EXPLAIN_AT_FS = 10.0
#: (name, lead before the transition fs, baseline, steps); the first is the main setting.
VARIANTS = (("main", 10.0, "trans minimum", 100),
            ("own structure at rest", 10.0, "own", 100),
            ("lead 5 fs", 5.0, "trans minimum", 100),
            ("lead 20 fs", 20.0, "trans minimum", 100))
TOP = 15
#: A frame enters the aggregate when its completeness error is at most this fraction of
#: its change; one above it is integrated again with RETRY_STEPS, and left out (listed)
#: when still above.  The path from the trans minimum to a barrier-region frame can pass
#: near-linear reference triples, where 100 midpoints do not resolve the integrand.
COMPLETENESS_LIMIT = 0.05
RETRY_STEPS = 400
#: Background windows of the cross-check: every this-many fs, clear of a transition by
#: CLEAR_FS.
BACKGROUND_EVERY_FS = 5.0
CLEAR_FS = 20.0


def load(split: str):
    from gicnet_runtime.io.formats import read_trajectories

    files = sorted((DATA / split).glob("*.h5"))
    if not files:
        raise SystemExit(f"no trajectories in {DATA / split}: run make azobenzene-data")
    return read_trajectories(files)


def fraction_json(f: isomers.Fraction) -> dict:
    return {"count": f.count, "total": f.total, "undecided": f.undecided,
            "value": f.value, "standard_error": f.standard_error}


def outcomes(model, heldout, **unrolling) -> dict:
    """Model against reference isomers from every held-out release frame, both ways;
    ``unrolling``: options of ``Model.propagate`` (segment_fs, restore_energy)."""
    runs = {"forward": [], "backward": []}
    starts = [t.info["release_frame"] for t in heldout]
    pos = np.stack([t.positions[r] for t, r in zip(heldout, starts)])
    vel = np.stack([t.velocities[r] for t, r in zip(heldout, starts)])
    half = heldout[0].info["half_fs"]
    dt = heldout[0].info["dt_fs"] * heldout[0].info["save_every"]
    window = azobenzene_data.outcome_window(dt)
    start = time.perf_counter()
    for way, sign in (("forward", 1.0), ("backward", -1.0)):
        trajs = model.propagate(pos, sign * vel, duration_fs=half, dt_fs=dt, unphysical="warn",
                                **unrolling)
        for t, ref in zip(trajs, heldout):
            phi = CNNC.value(t.positions)
            runs[way].append({
                "seed": ref.info["seed"],
                "model": isomers.outcome(phi, window),
                "reference": ref.info["end_isomer" if sign > 0 else "start_isomer"],
                "unphysical": t.info.get("unphysical"),
                "backtracks": t.info.get("backtracks"),
                "model_cnnc_deg": np.degrees(phi[::20]).round(1).tolist(),
                "model_cnn_deg": np.degrees(angles(t.positions, *CNN)[::20]).round(1).tolist(),
            })
    wall = time.perf_counter() - start
    both = runs["forward"] + runs["backward"]
    # A run the runtime flagged as unphysical (overheated, bonds broken) has no outcome:
    # counted as undecided, never as agreement.
    model_out = [isomers.UNDECIDED if r["unphysical"] else r["model"] for r in both]
    ref_out = [r["reference"] for r in both]
    crossed_model = [f["model"] != b["model"] for f, b in zip(runs["forward"], runs["backward"])
                     if not (f["unphysical"] or b["unphysical"])]
    crossed_ref = [f["reference"] != b["reference"]
                   for f, b in zip(runs["forward"], runs["backward"])]
    return {
        "starts": len(heldout), "runs": len(both), "duration_fs": half, "wall_s": wall,
        "segment_fs": unrolling.get("segment_fs", model.description.unroll_segment_fs),
        "restore_energy": unrolling.get("restore_energy", True),
        "agreement": fraction_json(isomers.agreement(model_out, ref_out)),
        "agreement_all_runs": fraction_json(isomers.agreement([r["model"] for r in both],
                                                              ref_out)),
        "cis_fraction_model": fraction_json(isomers.cis_fraction(model_out)),
        "cis_fraction_reference": fraction_json(isomers.cis_fraction(ref_out)),
        "crossing_fraction_model": float(np.mean(crossed_model)) if crossed_model else None,
        "crossing_fraction_reference": float(np.mean(crossed_ref)),
        "unphysical_runs": sum(r["unphysical"] is not None for r in both),
        "runs_detail": runs,
    }


def reactive_frames(trajs, lead_fs: float) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(seed, positions, velocities) ``lead_fs`` before each reactive trajectory's
    transition."""
    frames = []
    for t in trajs:
        when = t.info.get("transition_fs")
        if when is None:
            continue
        i = round((when - lead_fs) / (t.time_fs[1] - t.time_fs[0]))
        if 0 <= i < t.n_frames:
            frames.append((t.info["seed"], t.positions[i], t.velocities[i]))
    return frames


def attributions(model, trajs, trans_minimum) -> dict:
    from gicnet_runtime.analysis.attributions import summarize
    from gicnet_runtime.analysis.explain import integrated_gradients

    result = {}
    for name, lead, baseline, steps in VARIANTS:
        start = time.perf_counter()
        frames = reactive_frames(trajs, lead)
        found, kept, left_out = [], [], []
        for seed, pos, vel in frames:
            base = trans_minimum if baseline == "trans minimum" else pos
            for n_steps in (steps, RETRY_STEPS):
                a = integrated_gradients(model, pos, vel, CNNC, EXPLAIN_AT_FS, base,
                                         np.zeros_like(pos), n_steps)
                if a.relative_completeness_error <= COMPLETENESS_LIMIT:
                    found.append(a)
                    kept.append(seed)
                    break
            else:
                left_out.append({"seed": seed, "relative_completeness_error":
                                 a.relative_completeness_error, "steps": n_steps})
        summary = summarize(found)
        data = summary.to_json(TOP)
        data.update(lead_fs=lead, baseline=baseline, steps=steps, wall_s=time.perf_counter()
                    - start, seeds=kept, left_out=left_out, retry_steps=RETRY_STEPS,
                    completeness_limit=COMPLETENESS_LIMIT,
                    member_top=[list(np.array(summary.labels)[np.argsort(
                        -np.abs(summary.member_values[:, m].mean(0)))[:5]])
                        for m in range(summary.member_values.shape[1])])
        result[name] = data
        print(f"{name}: {len(kept)} of {len(frames)} frames complete, worst "
              f"{data['completeness']['max_relative']:.2%}, top "
              f"{[row['input'] for row in data['inputs'][:3]]}", flush=True)
    main = result["main"]
    top = [row["input"] for row in main["inputs"][:10]]
    for name in result:
        others = [row["input"] for row in result[name]["inputs"][:10]]
        result[name]["top10_overlap_with_main"] = len(set(top) & set(others))
    return result


def _window_changes(values: np.ndarray, dihedral: np.ndarray, lag: int, end: int,
                    usual_ends: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """|values[i] - values[i - lag]| per column (columns marked ``dihedral`` wrapped) for
    i = ``end``, and its mean over i in ``usual_ends``; values (T, C)."""
    change = values[lag:] - values[:-lag]
    change[:, dihedral] = wrap_angle(change[:, dihedral])
    change = np.abs(change)
    return change[end - lag], change[[i - lag for i in usual_ends]].mean(axis=0)


def cross_check(model, trajs, main: dict) -> dict:
    """Which internal coordinates move unusually in the 10 fs before a transition, in the
    reference trajectories themselves, against the model's attributions.

    For every input coordinate q_j (the model's own internal coordinates, dihedrals
    wrapped): the mean |q_j(t) - q_j(t - 10 fs)| over the windows ending at each reactive
    trajectory's transition, over the same mean for windows ending every
    BACKGROUND_EVERY_FS fs elsewhere in those trajectories (clear of the transition by
    CLEAR_FS).  A ratio above 1 marks a coordinate that moves more than usual just before
    the isomer changes; fast bond vibrations, large everywhere, stay near 1.  Also the
    inverting nitrogen's true CNN angle (not an input) and the CNNC dihedral."""
    from scipy.stats import spearmanr

    from gicnet_runtime.core.icdef import ICDefinition
    from gicnet_runtime.core.internal import to_internal

    desc = model.description
    icdef, masses = ICDefinition(desc.ic_rows), np.asarray(desc.masses_amu)
    n = icdef.n_atoms
    before, background, named = [], [], {"CNN angle (inverting N)": ([], []),
                                          "CNNC dihedral": ([], [])}
    for t in trajs:
        when = t.info.get("transition_fs")
        if when is None:
            continue
        dt = t.time_fs[1] - t.time_fs[0]
        lag, i1 = round(10.0 / dt), round(when / dt)
        if i1 - lag < 0:
            continue
        q = to_internal(t.positions, t.velocities, masses, icdef)[0].reshape(len(t.positions),
                                                                             3 * n)
        extra = np.stack([angles(t.positions, *CNN), CNNC.value(t.positions)], axis=1)
        ends = [i for i in range(lag, len(q), round(BACKGROUND_EVERY_FS / dt))
                if abs(i - i1) * dt > CLEAR_FS]
        at, usual = _window_changes(q, np.arange(3 * n) % 3 == 2, lag, i1, ends)
        before.append(at)
        background.append(usual)
        at, usual = _window_changes(extra, np.array([False, True]), lag, i1, ends)
        for k, key in enumerate(named):
            named[key][0].append(at[k])
            named[key][1].append(usual[k])
    # per transition: its window's change over its trajectory's usual change
    ratios = np.asarray(before) / np.maximum(np.asarray(background), 1e-12)
    excess = ratios.mean(axis=0)
    error = ratios.std(axis=0, ddof=1) / np.sqrt(len(ratios))
    z = (excess - 1.0) / np.maximum(error, 1e-12)
    labels = main["labels"][:3 * n]
    values = np.abs(np.asarray(main["values"])[:, :3 * n]).mean(axis=0)
    rho, p = spearmanr(excess, values)
    order = np.argsort(-z)[:10]
    top_attr = [row["input"] for row in main["inputs"] if not row["input"].startswith("d/dt")]

    def ratio(b, u):
        r = np.asarray(b) / np.maximum(np.asarray(u), 1e-12)
        return {"excess": float(r.mean()),
                "standard_error": float(r.std(ddof=1) / np.sqrt(len(r)))}

    return {"transitions": len(before), "window_fs": 10.0,
            "largest_excess_motion": [{"input": labels[i], "excess": float(excess[i]),
                                       "standard_error": float(error[i]), "z": float(z[i]),
                                       "attribution_rank": (top_attr.index(labels[i]) + 1
                                                            if labels[i] in top_attr
                                                            else None)} for i in order],
            "named": {key: ratio(b, u) for key, (b, u) in named.items()},
            "spearman_excess_vs_mean_abs_attribution": {"rho": float(rho), "p": float(p)},
            "top10_excess_among_top_attributions":
                len({labels[i] for i in order} & set(top_attr))}


def plots(insight: dict, heldout) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main = insight["attributions"]["main"]
    rows = main["inputs"][:TOP][::-1]
    fig, ax = plt.subplots(figsize=(7.5, 6))
    y = np.arange(len(rows))
    ax.barh(y, [r["mean"] for r in rows], xerr=[r["frame_spread"] for r in rows],
            color="tab:blue", alpha=0.8, label="mean over frames ± spread over frames")
    ax.errorbar([r["mean"] for r in rows], y, xerr=[r["member_spread"] for r in rows],
                fmt="none", ecolor="tab:red", capsize=3, label="± spread over members")
    ax.set_yticks(y, [r["input"] for r in rows], fontsize=8)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("attribution to the CNNC dihedral at 10 fs, rad")
    ax.set_title(f"azobenzene, {main['frames']} frames 10 fs before a transition\n"
                 "baseline: trans minimum at rest", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "azobenzene_attributions.png", dpi=110)
    plt.close(fig)

    names = list(insight["attributions"])
    kinds = [k["kind"] for k in main["by_kind"]]
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        shares = [k["share"] for k in insight["attributions"][name]["by_kind"]]
        ax.bar(np.arange(len(kinds)) + j * width, shares, width, label=name)
    ax.set_xticks(np.arange(len(kinds)) + 0.4 - width / 2, kinds, fontsize=8)
    ax.set_ylabel("share of Σ|attribution|")
    ax.legend(fontsize=7)
    ax.set_title("which kind of input drives the CNNC dihedral, per setting", fontsize=10)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "azobenzene_kinds.png", dpi=110)
    plt.close(fig)

    runs = insight["outcomes"]["runs_detail"]["forward"][:4]
    fig, axes = plt.subplots(2, len(runs), figsize=(11, 5), sharex=True, sharey="row")
    for k, (run, ref) in enumerate(zip(runs, heldout)):
        r = ref.info["release_frame"]
        t_ref = ref.time_fs[r:] - ref.time_fs[r]
        t_mod = np.arange(len(run["model_cnnc_deg"])) * 10.0
        axes[0, k].plot(t_ref, np.degrees(np.abs(CNNC.value(ref.positions[r:]))), "k-",
                        lw=1, label="GFN2-xTB")
        axes[0, k].plot(t_mod, np.abs(run["model_cnnc_deg"]), "o", ms=3, color="tab:orange",
                        label="model")
        axes[1, k].plot(t_ref, np.degrees(angles(ref.positions[r:], *CNN)), "k-", lw=1)
        axes[1, k].plot(t_mod, run["model_cnn_deg"], "o", ms=3, color="tab:orange")
        model_outcome = "unphysical" if run["unphysical"] else run["model"]
        axes[0, k].set_title(f"seed {run['seed']}: GFN2 {run['reference']}, model "
                             f"{model_outcome}", fontsize=9)
        axes[1, k].set_xlabel("time after release, fs")
    axes[0, 0].set_ylabel("|CNNC|, deg")
    axes[1, 0].set_ylabel("CNN (inverting N), deg")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "azobenzene_outcomes.png", dpi=110)
    plt.close(fig)


#: Unrolling settings compared by --choose-segment.
SEGMENT_CHOICES = ({"segment_fs": 10.0}, {"segment_fs": 7.5}, {"segment_fs": 5.0},
                   {"segment_fs": 5.0, "restore_energy": False}, {"segment_fs": 2.5})


def choose_segment(model, out: Path) -> dict:
    """Outcomes from the training run's validation trajectories (never trained on) for
    every unrolling setting of SEGMENT_CHOICES: what the recipe's unroll_segment_fs is
    chosen on."""
    from gicnet_runtime.io.formats import read_trajectories

    run = json.loads((ROOT / "runs" / "azobenzene" / "run.json").read_text())
    val = read_trajectories([run["sources"][i] for i in run["val_trajectories"]])
    rows = []
    for choice in SEGMENT_CHOICES:
        found = outcomes(model, val, **choice)
        rows.append({**choice, **{k: found[k] for k in (
            "runs", "unphysical_runs", "agreement", "cis_fraction_model",
            "cis_fraction_reference")}})
        print(f"{choice}: {found['unphysical_runs']}/{found['runs']} unphysical, agreement "
              f"{found['agreement']['count']}/{found['agreement']['total']}, cis "
              f"{found['cis_fraction_model']['value']:.2f} (reference "
              f"{found['cis_fraction_reference']['value']:.2f})", flush=True)
    result = {"validation_seeds": [t.info["seed"] for t in val], "choices": rows}
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    import ase.io

    from gicnet_runtime.core.model import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EVAL / "insight.json")
    parser.add_argument("--skip-outcomes", action="store_true")
    parser.add_argument("--choose-segment", type=Path, default=None, metavar="JSON",
                        help="only compare unrolling segments on the validation "
                        "trajectories, into JSON")
    args = parser.parse_args(argv)
    model = load_model(MODEL, device="cpu")
    if args.choose_segment is not None:
        choose_segment(model, args.choose_segment)
        return 0
    heldout, train = load("heldout"), load("train")
    trans_path = DATA / "trans_minimum.xyz"
    if not trans_path.exists():
        atoms, _ = azobenzene_scan.minimum("trans")
        atoms.write(trans_path)
    trans = ase.io.read(trans_path).positions
    insight = {"model": str(MODEL.relative_to(ROOT)), "cnnc_atoms_1based":
               [a + 1 for a in CNNC.atoms], "explained_at_fs": EXPLAIN_AT_FS}
    if not args.skip_outcomes:
        insight["outcomes"] = outcomes(model, heldout)
        o = insight["outcomes"]
        print(f"agreement {o['agreement']['value']:.2f} ± {o['agreement']['standard_error']:.2f}"
              f", cis model {o['cis_fraction_model']['value']:.2f}, reference "
              f"{o['cis_fraction_reference']['value']:.2f}", flush=True)
    insight["attributions"] = attributions(model, train + heldout, trans)
    insight["cross_check"] = cross_check(model, train + heldout, insight["attributions"]["main"])
    args.out.write_text(json.dumps(insight, indent=1) + "\n")
    if "outcomes" in insight:
        plots(insight, heldout)
    print(json.dumps(insight["cross_check"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
