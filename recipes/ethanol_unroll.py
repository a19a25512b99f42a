"""Choose the exported ethanol model's unrolling defaults on trajectories it never saw.

    python recipes/ethanol_unroll.py [--duration-fs 50000]     # or: make unroll-choice
        [--reference data/ethanol/extra | --reference validation]
        [--settings recipes/ethanol_model.json] [--out runs/unroll-choice]

The reference trajectories (``make unroll-choice``: the 30 extra GFN2-xTB trajectories of
``make extra-data``, which nothing else uses; ``validation``: the training run's 4
validation trajectories, run.json ``val_trajectories``, which chose the defaults before
2026-12-07 and proved too few: docs/analysis.md) are unrolled from frame 0 with every
variant of energy restoration and time-reversal correction below, by ``gicnet evaluate``
(GFN2-xTB energies every 50 fs), on the settings' exported model (``export_dir``).
Every variant runs on a copy of the ensemble file whose metadata carries its restoration
(``gicnet.unroll_restore_fraction`` and ``gicnet.unroll_restore_deficit``, what ``gicnet
export --restore-fraction/--restore-deficit`` writes) and its correction's share
(``gicnet.unroll_reversal_share``, ``gicnet export --reversal-share``), whatever the
model's own metadata says.  The segment length stays 10 fs: 7.5 and 5 fs were measured
without the correction and lost on every set (``docs/eval/extra30/unroll_choice.json``,
docs/analysis.md).  The default duration is that of ``make evaluate``'s runs, 50 ps: over
20 ps, variants that restore less than all of the end deficit looked as good, then let a
held-out trajectory's drift build up (docs/analysis.md).  A table of stability,
total-energy RMS deviation, drift, spectrum overlap/Pearson and stretch band heights goes
to stdout and ``choice.json`` in the output folder, with the pick of the usual rule
(:func:`pick`: of the variants stable on every trajectory and within 0.3 kcal/mol, the
best spectrum overlap).  The held-out trajectories stay untouched for the confirmation
(``make evaluate``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "recipes" / "ethanol_model.json"
OUT = ROOT / "runs" / "unroll-choice"
#: (segment length fs, energy restoration: False or (fraction of the deficit, how it is
#: measured), the time-reversal correction's share (0: none)), each overriding the metadata
VARIANTS = [(10.0, False, 0.0), (10.0, (0.7, "end"), 0.0),
            *((10.0, restore, 0.5) for restore in (False, (1.0, "end"), (0.7, "end"),
                                                     (0.5, "end"), (0.3, "end"))),
            (10.0, False, 0.4), (10.0, (0.7, "end"), 0.4), (10.0, (0.7, "end"), 0.3)]


#: The rule's energy bound: the issue's target for the total-energy RMS deviation, kcal/mol.
ENERGY_BOUND_KCAL_MOL = 0.3
RULE = (f"of the variants stable on every trajectory with a mean total-energy RMS deviation "
        f"within {ENERGY_BOUND_KCAL_MOL:g} kcal/mol, the best spectrum overlap")


def validation_files(settings: dict) -> list[Path]:
    run = json.loads((ROOT / settings["run_dir"] / "run.json").read_text())
    files = sorted((ROOT / settings["data"]["train"]).glob("*.h5"))
    return [files[i] for i in run["val_trajectories"]]


def reference_files(reference: str, settings: dict) -> list[Path]:
    """The trajectories to choose on: ``validation`` or a folder of H5MD files."""
    if reference == "validation":
        return validation_files(settings)
    files = sorted(Path(reference).glob("*.h5"))
    if not files:
        raise SystemExit(f"ethanol_unroll: no *.h5 trajectories in {reference} "
                         "(make extra-data simulates the default set)")
    return files


def pick(rows: list[dict]) -> dict | None:
    """The variant the usual rule (``RULE``) picks from ``rows`` (:func:`evaluate`'s), the
    first listed on a tie; None when no variant qualifies."""
    def qualifies(row: dict) -> bool:
        stable, count = (int(n) for n in row["stable"].split("/"))
        return stable == count and row["energy_rms_kcal_mol"] <= ENERGY_BOUND_KCAL_MOL \
            and row["overlap"] is not None
    candidates = [row for row in rows if qualifies(row)]
    return max(candidates, key=lambda row: row["overlap"], default=None)


def restoring(model: Path, fraction: float, deficit: str, out: Path,
              reversal_share: float | None = None) -> Path:
    """A copy at ``out`` of the ensemble file in folder ``model`` whose metadata asks for
    restoring ``fraction`` of the deficit measured as ``deficit`` and, unless None, for the
    time-reversal correction with ``reversal_share``."""
    import onnx

    graph = onnx.load(str(model / "ensemble.onnx"))
    props = {p.key: p.value for p in graph.metadata_props}
    props.update({"gicnet.unroll_restore_fraction": json.dumps(fraction),
                  "gicnet.unroll_restore_deficit": json.dumps(deficit)})
    if reversal_share is not None:
        props["gicnet.unroll_reversal_share"] = json.dumps(reversal_share)
    del graph.metadata_props[:]
    onnx.helper.set_model_props(graph, props)
    onnx.save(graph, str(out))
    return out


def label(restore) -> str:
    """A variant's restoration in words: False, or (fraction, how the deficit is measured)."""
    return "off" if restore is False else f"{restore[0]:g} of the {restore[1]} deficit"


def evaluate(files: list[Path], model: Path, out_root: Path, segment_fs: float, restore,
             share: float, duration_fs: float) -> dict:
    name = ("plain" if restore is False else f"restore{restore[0]:g}{restore[1]}") \
        + f"_reversal{share:g}"
    out = out_root / f"L{segment_fs:g}_{name}"
    # the metadata's restoration only matters when it is on
    model = restoring(model, *(restore or (1.0, "end")), out_root / f"{name}.onnx", share)
    command = [sys.executable, str(ROOT / "cli.py"), "evaluate",
               "--model", str(model), "--out", str(out),
               "--long-starts", str(len(files)), "--long-duration-fs", str(duration_fs),
               "--engine", "gfn2", "--energy-every", "50", "--workers", "2",
               "--segment-fs", str(segment_fs),
               "--restore-energy" if restore is not False else "--no-restore-energy",
               *[arg for f in files for arg in ("--reference", str(f))]]
    subprocess.run(command, check=True)
    report = json.loads((out / "report.json").read_text())
    spectrum, energy = report["spectrum"], report["energy"]
    return {"segment_fs": segment_fs, "restore_energy": restore is not False,
            "restoration": label(restore), "reversal_share": share,
            "stable": f"{report['stability']['stable']}/{report['stability']['count']}",
            "energy_rms_kcal_mol": energy["rms_deviation_kcal_mol"]["mean"],
            "energy_rms_max_kcal_mol": energy["rms_deviation_kcal_mol"]["max_abs"],
            "drift_kcal_mol_per_ps": energy["drift_kcal_mol_per_ps"]["mean"],
            "overlap": spectrum.get("overlap"), "pearson": spectrum.get("pearson"),
            "band_heights": spectrum.get("stretch_band_height_ratio")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-fs", type=float, default=50000.0)
    parser.add_argument("--settings", type=Path, default=SETTINGS, help="model recipe JSON")
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the reports")
    parser.add_argument("--reference", default="validation",
                        help="folder of H5MD trajectories, or 'validation' (the run's own)")
    args = parser.parse_args(argv)
    settings = json.loads(args.settings.read_text())
    files = reference_files(args.reference, settings)
    model = ROOT / settings["export_dir"]
    args.out.mkdir(parents=True, exist_ok=True)  # gicnet evaluate writes into existing folders
    rows = [evaluate(files, model, args.out, seg, restore, share, args.duration_fs)
            for seg, restore, share in VARIANTS]
    choice = pick(rows)
    (args.out / "choice.json").write_text(json.dumps(
        {"reference": args.reference, "reference_files": [f.name for f in files],
         "duration_fs": args.duration_fs, "rule": RULE,
         "rows": rows, "pick": choice}, indent=1))
    print("| segment fs | restoration | reversal share | stable | E RMS kcal/mol (max) "
          "| drift kcal/mol/ps | overlap | Pearson | band heights |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        bands = ", ".join(f"{k} {v:.2f}" for k, v in (r["band_heights"] or {}).items())
        print(f"| {r['segment_fs']:g} | {r['restoration']} | {r['reversal_share']:g} "
              f"| {r['stable']} "
              f"| {r['energy_rms_kcal_mol']:.2f} ({r['energy_rms_max_kcal_mol']:.2f}) | "
              f"{r['drift_kcal_mol_per_ps']:+.4f} | {r['overlap']:.2f} | {r['pearson']:.2f} | "
              f"{bands} |")
    if choice is None:
        print(f"no variant is stable everywhere and within {ENERGY_BOUND_KCAL_MOL} kcal/mol")
    else:
        print(f"pick: {choice['segment_fs']:g} fs, {choice['restoration']}, reversal share "
              f"{choice['reversal_share']:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
