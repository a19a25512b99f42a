"""What the shipped azobenzene model says about the isomerization, and how far to trust it.

    python recipes/azobenzene_insight.py        # or: make azobenzene-insight
                                                # -> exported/azobenzene/insight.json, docs/azobenzene_*.png

After ``make azobenzene-data`` and ``make azobenzene-model``.  Four measurements:

1. **Outcomes** (``outcomes``): from every held-out release frame (the barrier region, see
   ``recipes/azobenzene_data.py``) the model unrolls ``half_fs`` forward, and ``half_fs``
   backward (velocities reversed), as the reference did.  Each run's isomer is read off its
   CNNC dihedral over the last 10 fs (``gicnet_runtime.analysis.isomers.outcome``).  Reported:
   agreement with the reference run from the same start, and the cis fraction of model and
   reference with binomial standard errors.
2. **Attributions** (``attributions``): integrated gradients of the CNNC dihedral at
   t = 10 fs (``gicnet_runtime.analysis.explain``) from frames ``LEAD_FS`` before each
   reference transition (the last crossing of CNNC = 90°), over every reactive trajectory
   of both splits, aggregated per input and per kind with spreads over frames and members
   and every frame's completeness.  The main setting is the seed's: 10 fs lead, the trans
   minimum at rest as baseline, 100 steps.  Variants: the frame's own structure at rest as
   baseline, and leads of 5 and 20 fs.
3. **Cross-check** (``cross_check``): in the reference trajectories themselves, which
   internal coordinates move most in the 10 fs before a transition, in units of their
   thermal spread over all frames; compared with the attributions' ranking.
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

import azobenzene_scan  # noqa: E402

from gicnet_runtime.analysis import isomers  # noqa: E402
from gicnet_runtime.core.internal import Coordinate, angles  # noqa: E402

DATA = ROOT / "data" / "azobenzene"
MODEL = ROOT / "exported" / "azobenzene"
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
#: The outcome is read over this last stretch of a run, fs.
OUTCOME_WINDOW_FS = 10.0
TOP = 15


def load(split: str):
    from gicnet_runtime.io.formats import read_trajectories

    files = sorted((DATA / split).glob("*.h5"))
    if not files:
        raise SystemExit(f"no trajectories in {DATA / split}: run make azobenzene-data")
    return read_trajectories(files)


def fraction_json(f: isomers.Fraction) -> dict:
    return {"count": f.count, "total": f.total, "undecided": f.undecided,
            "value": f.value, "standard_error": f.standard_error}


def outcomes(model, heldout) -> dict:
    """Model against reference isomers from every held-out release frame, both ways."""
    runs = {"forward": [], "backward": []}
    starts = [t.info["release_frame"] for t in heldout]
    pos = np.stack([t.positions[r] for t, r in zip(heldout, starts)])
    vel = np.stack([t.velocities[r] for t, r in zip(heldout, starts)])
    half = heldout[0].info["half_fs"]
    dt = heldout[0].info["dt_fs"] * heldout[0].info["save_every"]
    window = round(OUTCOME_WINDOW_FS / dt)
    start = time.perf_counter()
    for way, sign in (("forward", 1.0), ("backward", -1.0)):
        trajs = model.propagate(pos, sign * vel, duration_fs=half, dt_fs=dt, unphysical="warn")
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
    model_out = [r["model"] for r in both]
    ref_out = [r["reference"] for r in both]
    crossed_model = [f["model"] != b["model"] for f, b in zip(runs["forward"], runs["backward"])]
    crossed_ref = [f["reference"] != b["reference"]
                   for f, b in zip(runs["forward"], runs["backward"])]
    return {
        "starts": len(heldout), "runs": len(both), "duration_fs": half, "wall_s": wall,
        "agreement": fraction_json(isomers.agreement(model_out, ref_out)),
        "cis_fraction_model": fraction_json(isomers.cis_fraction(model_out)),
        "cis_fraction_reference": fraction_json(isomers.cis_fraction(ref_out)),
        "crossing_fraction_model": float(np.mean(crossed_model)),
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
        found = []
        for _, pos, vel in frames:
            base = (trans_minimum, np.zeros_like(pos)) if baseline == "trans minimum" \
                else (pos, np.zeros_like(pos))
            found.append(integrated_gradients(model, pos, vel, CNNC, EXPLAIN_AT_FS,
                                              base[0], base[1], steps))
        summary = summarize(found)
        data = summary.to_json(TOP)
        data.update(lead_fs=lead, baseline=baseline, steps=steps, wall_s=time.perf_counter()
                    - start, seeds=[seed for seed, _, _ in frames],
                    member_top=[list(np.array(summary.labels)[np.argsort(
                        -np.abs(summary.member_values[:, m].mean(0)))[:5]])
                        for m in range(summary.member_values.shape[1])])
        result[name] = data
        print(f"{name}: {len(frames)} frames, worst completeness "
              f"{data['completeness']['max_relative']:.2%}, top "
              f"{[row['input'] for row in data['inputs'][:3]]}", flush=True)
    main = result["main"]
    top = [row["input"] for row in main["inputs"][:10]]
    for name in result:
        others = [row["input"] for row in result[name]["inputs"][:10]]
        result[name]["top10_overlap_with_main"] = len(set(top) & set(others))
    return result


def cross_check(model, trajs, main: dict) -> dict:
    """Standardized motion of every internal coordinate over the 10 fs before each
    transition in the reference trajectories, against the model's attributions."""
    from scipy.stats import spearmanr

    from gicnet_runtime.core.icdef import ICDefinition
    from gicnet_runtime.core.internal import to_internal

    desc = model.description
    icdef, masses = ICDefinition(desc.ic_rows), np.asarray(desc.masses_amu)
    n = icdef.n_atoms

    def q(positions, velocities) -> np.ndarray:  # (3N,) as explain's first 3N inputs
        return to_internal(positions, velocities, masses, icdef)[0].ravel()

    every = [q(p, v) for t in trajs for p, v in zip(t.positions[::25], t.velocities[::25])]
    spread = np.std(np.asarray(every), axis=0)
    moves = []
    for t in trajs:
        when = t.info.get("transition_fs")
        if when is None:
            continue
        dt = t.time_fs[1] - t.time_fs[0]
        i1 = round(when / dt)
        i0 = i1 - round(10.0 / dt)
        if i0 < 0:
            continue
        delta = q(t.positions[i1], t.velocities[i1]) - q(t.positions[i0], t.velocities[i0])
        delta[2::3] = np.angle(np.exp(1j * delta[2::3]))  # dihedral differences wrapped
        moves.append(np.abs(delta) / np.maximum(spread, 1e-12))
    count = len(moves)
    moves = np.asarray(moves).mean(axis=0)
    labels = main["labels"][:3 * n]
    values = np.abs(np.asarray(main["values"])[:, :3 * n]).mean(axis=0)
    rho, p = spearmanr(moves, values)
    order = np.argsort(-moves)[:10]
    top_attr = {row["input"] for row in main["inputs"] if not row["input"].startswith("d/dt")}
    return {"transitions": count,
            "largest_moves": [{"input": labels[i], "standardized_change": float(moves[i])}
                              for i in order],
            "spearman_moves_vs_mean_abs_attribution": {"rho": float(rho), "p": float(p)},
            "top10_moves_among_top15_attributions":
                len({labels[i] for i in order} & top_attr)}


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
        axes[0, k].set_title(f"seed {run['seed']}: {run['reference']} / {run['model']}",
                             fontsize=9)
        axes[1, k].set_xlabel("time after release, fs")
    axes[0, 0].set_ylabel("|CNNC|, deg")
    axes[1, 0].set_ylabel("CNN (inverting N), deg")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "azobenzene_outcomes.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    import ase.io

    from gicnet_runtime.core.model import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODEL / "insight.json")
    parser.add_argument("--skip-outcomes", action="store_true")
    args = parser.parse_args(argv)
    model = load_model(MODEL, device="cpu")
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
