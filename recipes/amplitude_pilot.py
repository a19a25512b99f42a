"""A short one-member pilot of a training setting: held-out 0-10 fs errors and how much bond
stretch the prediction keeps at t = tc.

    python recipes/amplitude_pilot.py NAME --amplitude W [--budget-s 420] [--energy DIR]

Trains one member with the ethanol recipe's "train" settings (``weights.amplitude`` set to
W, the time budget to ``--budget-s``) into ``runs/pilot/NAME``, reusing the energy model in
``--energy`` (a finished run's ``energy/`` folder: the same settings fit the same model), then
exports it and writes ``runs/pilot/NAME/result.json``: the held-out errors that ``make
model``'s report gives (``ethanol_model.heldout_errors``: starts every 5 fs) and
:func:`gicnet_runtime.analysis.evaluate.segment_end_attenuation`.  Two pilots with one torch
thread each run side by side on the 2-core machine under the same load; a few epochs say
which way a setting moves the attenuation, not where a full run ends
(docs/eval/amplitude/pilot.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing gicnet

from gicnet_runtime.atomic import write_json  # noqa: E402

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--amplitude", type=float, required=True)
    parser.add_argument("--budget-s", type=float, default=420.0)
    parser.add_argument("--energy", type=Path, default=ROOT / "runs/ethanol/energy")
    args = parser.parse_args()
    settings = json.loads((ROOT / "recipes/ethanol_model.json").read_text())
    out = ROOT / "runs/pilot" / args.name
    train = {**settings["train"], "time_budget_s": args.budget_s}
    train["weights"] = {**train["weights"], "amplitude": args.amplitude}
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "energy").exists():
        shutil.copytree(args.energy, out / "energy")
    write_json(train, out / "cfg.json")
    files = sorted(str(p) for p in (ROOT / settings["data"]["train"]).glob("*.h5"))
    cli = [sys.executable, str(ROOT / "cli.py")]
    with open(out / "train.log", "w") as log:
        subprocess.run(cli + ["train", *files, "--out", str(out), "--config",
                              str(out / "cfg.json"), "--ensemble", "1", "--threads", "1",
                              "--device", "cpu", "--resume"],
                       check=True, stdout=log, stderr=subprocess.STDOUT)
    subprocess.run(cli + ["export", str(out), "--out", str(out / "exported"),
                          "--layout", "ensemble"], check=True)
    write_json(measure(out, ROOT / settings["data"]["heldout"], args.amplitude),
               out / "result.json")
    print((out / "result.json").read_text())


def measure(out: Path, heldout: Path, weight: float) -> dict:
    from ethanol_model import heldout_errors, heldout_starts

    from gicnet_runtime.analysis.evaluate import segment_end_attenuation
    from gicnet_runtime.core.model import load_model
    from gicnet_runtime.io.formats import read_trajectories

    references = read_trajectories(sorted(heldout.glob("*.h5")))
    model = load_model(out / "exported", device="cpu")
    history = json.loads((out / "member_0" / "history.json").read_text())
    return {"amplitude_weight": weight, "epochs": len(history),
            "heldout": heldout_errors(model, references),
            "attenuation": segment_end_attenuation(model, references,
                                                   heldout_starts(model, references)),
            "last_validation": history[-1]}


if __name__ == "__main__":
    main()
