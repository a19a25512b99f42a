"""Does the end-of-segment bond attenuation damp the stretch bands?  A diagnostic.

    python recipes/attenuation_undo.py              # -> docs/eval/attenuation_undo/, ~2 min

``gicnet evaluate`` reports, per kind of bond, the slope of the predicted bond displacement at
t = tc on the reference's (``segment_end_attenuation`` in docs/eval/report.json; 0.984 for the
shipped model's O-H bonds).  This recipe runs the same 10 held-out starts x 50 ps measurement
as ``make evaluate``, with energy restoration off and on, but with that attenuation undone at
every segment end: each real-atom bond's displacement from its mean held-out length is
divided by its kind's slope before the next segment starts.  If the stretch bands then come
back, the attenuation is what takes them away.

Diagnostic only: the correction is patched into the unrolling here, not part of the runtime,
and is not a fix (one slope per kind of bond, from the held-out set itself).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing gicnet

REFERENCES = ROOT / "data" / "ethanol" / "heldout"
SHIPPED_REPORT = ROOT / "docs" / "eval" / "report.json"
OUT = ROOT / "docs" / "eval" / "attenuation_undo"
RUNS = ROOT / "runs" / "attenuation_undo"


def undo_attenuation(prediction, masses: np.ndarray, icdef, equilibrium_A: np.ndarray,
                     gain: np.ndarray):
    """``prediction`` (a SegmentPrediction) with each member's end state's bond displacements
    from ``equilibrium_A`` (P,) scaled by ``gain`` (P,), P the :func:`gicnet_runtime.core.
    internal.bond_rows` of ``icdef``; internal rates, centre of mass, its velocity and the
    body frame kept.  masses (N,) amu."""
    from gicnet_runtime.core import internal

    real = internal.bond_rows(icdef)
    pos, vel = prediction.end_positions, prediction.end_velocities
    ok = (np.all(np.isfinite(pos), axis=(-2, -1)) & np.all(np.isfinite(vel), axis=(-2, -1))
          )[..., None, None]
    q, q_dot, rotation = internal.to_internal(np.where(ok, pos, 0.0), np.where(ok, vel, 0.0),
                                              masses, icdef)
    q[..., real, internal.DISTANCE] = (equilibrium_A + gain
                                       * (q[..., real, internal.DISTANCE] - equilibrium_A))
    body_pos, body_vel = internal.to_body_cartesian(q, q_dot, icdef)
    # New bond lengths move the centre of mass in the body frame: put it back at the origin.
    body_pos = body_pos - internal.centre_of_mass(body_pos, masses)[..., None, :]
    body_vel = body_vel - internal.centre_of_mass(body_vel, masses)[..., None, :]
    com = internal.centre_of_mass(pos, masses)[..., None, :]
    com_vel = internal.centre_of_mass(vel, masses)[..., None, :]
    new_pos = np.einsum("...ji,...nj->...ni", rotation, body_pos) + com
    new_vel = np.einsum("...ji,...nj->...ni", rotation, body_vel) + com_vel
    return dataclasses.replace(prediction, end_positions=np.where(ok, new_pos, pos),
                               end_velocities=np.where(ok, new_vel, vel))


def main() -> None:
    import cli
    from gicnet_runtime.analysis import evaluate as ev
    from gicnet_runtime.core.icdef import ICDefinition
    from gicnet_runtime.core.model import load_model
    from gicnet_runtime.io.formats import read_trajectory
    from gicnet_runtime.unroll import segment

    slopes = {kind: v["displacement"] for kind, v in
              json.loads(SHIPPED_REPORT.read_text())["segment_end_attenuation"].items()}
    desc = load_model().description
    icdef = ICDefinition(desc.ic_rows)
    bonds = ev.coordinate_sets(icdef)["bond"]
    references = [read_trajectory(p) for p in sorted(REFERENCES.glob("*.h5"))]
    equilibrium = ev.equilibrium_bonds_A(references, bonds)
    z = desc.atomic_numbers
    gain = np.array([1.0 / slopes[ev.bond_kind(z[a], z[b])] for a, b in bonds])
    predict = segment.SegmentStep.predict

    def patched(self, state, rows, reference, limits):
        return undo_attenuation(predict(self, state, rows, reference, limits), self.masses,
                                icdef, equilibrium, gain)

    segment.SegmentStep.predict = patched
    OUT.mkdir(parents=True, exist_ok=True)
    RUNS.mkdir(parents=True, exist_ok=True)
    summary = {"slopes_undone": slopes}
    for name, flags in (("no_restore", ["--no-restore-energy"]), ("restore", [])):
        out = RUNS / name
        try:
            cli.main(["evaluate", "--reference", str(REFERENCES), "--out", str(out),
                      "--long-duration-fs", "50000", "--long-dt-fs", "1", "--engine", "gfn2",
                      "--energy-every", "50", "--workers", "2", *flags],
                     standalone_mode=False)
        except SystemExit as stop:
            if stop.code:
                raise
        shutil.copy(out / "report.json", OUT / f"report_{name}.json")
        report = json.loads((out / "report.json").read_text())
        summary[name] = {"stable": report["stability"]["stable"],
                         "energy_rms_kcal_mol": report["energy"]["rms_deviation_kcal_mol"],
                         **{k: report["spectrum"][k] for k in
                            ("overlap", "pearson", "stretch_band_height_ratio")}}
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
