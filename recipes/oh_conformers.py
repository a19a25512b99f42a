"""How regular is the O-H stretch, per OH-rotor conformer, in the model and the reference?

    python recipes/oh_conformers.py            # -> docs/eval/oh_conformers.json, ~25 s
        [--model exported/ethanol] [--out FILE]

The reference's O-H stretch band is a doublet (about 3500 and 3550 cm-1 in
docs/eval/extra30/spectrum.png) where every model shows one lower, broader peak.  This
diagnostic asks whether the model gets the stretch's frequency wrong (on average, or per
conformer of the OH rotor: the H-O-C-C dihedral anti, near 180 deg, or gauche, near +-60
deg) or makes it irregular, which broadens the band and lowers its peak.  From each
trajectory it takes the O-H bond length r(t) and cuts it into
periods at its upward crossings of its running mean (a 20 fs window); each period gives a
frequency 1 / (T c) and the conformer at its midpoint.  Per conformer: the number of periods,
the mean frequency and its spread.

Trajectories: the 30 extra GFN2-xTB runs (make extra-data; 10 ps at 0.5 fs each) and the
shipped ensemble unrolled from their first frames for the same 10 ps at 0.5 fs, with its
default unrolling and with energy restoration off.  Diagnostic only: nothing here feeds the
runtime or the training.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing gicnet

from gicnet_runtime.analysis.spectrum import SPEED_OF_LIGHT_CM_PER_FS  # noqa: E402
from gicnet_runtime.core.internal import dihedrals  # noqa: E402

REFERENCES = ROOT / "data" / "ethanol" / "extra"
OUT = ROOT / "docs" / "eval" / "oh_conformers.json"
#: Window of the running mean the periods are cut at, fs (about two O-H periods).
MEAN_WINDOW_FS = 20.0
#: Conformer classes by |H-O-C-C dihedral|, degrees.
CLASSES = {"anti": (150.0, 180.0), "gauche": (30.0, 90.0)}


def oh_atoms(numbers: np.ndarray, positions: np.ndarray) -> tuple[int, int, int, int]:
    """(H, O, C bonded to O, the other C) of ethanol from atomic numbers and one geometry."""
    o = int(np.flatnonzero(numbers == 8)[0])
    hs, cs = np.flatnonzero(numbers == 1), np.flatnonzero(numbers == 6)
    h = int(hs[np.argmin(np.linalg.norm(positions[hs] - positions[o], axis=-1))])
    dist = np.linalg.norm(positions[cs] - positions[o], axis=-1)
    return h, o, int(cs[np.argmin(dist)]), int(cs[np.argmax(dist)])


def periods(time_fs: np.ndarray, positions: np.ndarray, atoms: tuple[int, int, int, int]
            ) -> tuple[np.ndarray, np.ndarray]:
    """The O-H stretch's periods of one trajectory: (frequency cm-1 (P,), |dihedral| deg
    at each period's midpoint (P,))."""
    h, o, c1, c2 = atoms
    r = np.linalg.norm(positions[:, h] - positions[:, o], axis=-1)
    dt = float(np.median(np.diff(time_fs)))
    width = max(1, int(round(MEAN_WINDOW_FS / dt)))
    mean = np.convolve(r, np.ones(width) / width, mode="same")
    x = (r - mean)[width:-width]
    t = time_fs[width:-width]
    up = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0))
    # crossing times by linear interpolation between the two frames
    cross = t[up] + dt * (-x[up]) / (x[up + 1] - x[up])
    period = np.diff(cross)
    mid = 0.5 * (cross[1:] + cross[:-1])
    phi = np.degrees(np.abs(dihedrals(positions, h, o, c1, c2)))
    return 1.0 / (period * SPEED_OF_LIGHT_CM_PER_FS), np.interp(mid, time_fs, phi)


def robust_spread(x: np.ndarray) -> float:
    """1.4826 x the median absolute deviation: the standard deviation of a normal
    distribution, but not set by a few odd periods."""
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def summary(trajectories) -> dict:
    """Per conformer class: periods counted, mean frequency, its spread (std) and robust
    spread (:func:`robust_spread`), cm-1; and the difference of the class means."""
    freq, phi = [], []
    for time_fs, positions, atoms in trajectories:
        f, p = periods(time_fs, positions, atoms)
        freq.append(f)
        phi.append(p)
    freq, phi = np.concatenate(freq), np.concatenate(phi)
    out = {}
    for name, (lo, hi) in CLASSES.items():
        sel = (phi >= lo) & (phi <= hi)
        some = bool(sel.any())
        out[name] = {"periods": int(sel.sum()),
                     "mean_cm": float(freq[sel].mean()) if some else None,
                     "std_cm": float(freq[sel].std()) if some else None,
                     "robust_spread_cm": robust_spread(freq[sel]) if some else None,
                     "share_of_periods": float(sel.mean())}
    means = [out[name]["mean_cm"] for name in ("anti", "gauche")]
    out["anti_minus_gauche_cm"] = None if None in means else means[0] - means[1]
    out["all"] = {"periods": int(freq.size), "mean_cm": float(freq.mean()),
                  "std_cm": float(freq.std()), "robust_spread_cm": robust_spread(freq)}
    return out


def _cm(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} cm-1"


def main(argv: list[str] | None = None) -> int:
    import argparse

    from gicnet_runtime.atomic import write_json
    from gicnet_runtime.core.model import load_model
    from gicnet_runtime.io.h5md import read_h5md

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "exported" / "ethanol",
                        help="model file or folder [default: the shipped ensemble]")
    parser.add_argument("--out", type=Path, default=OUT, help="JSON report")
    args = parser.parse_args(argv)
    files = sorted(REFERENCES.glob("*.h5"))
    if not files:
        raise SystemExit(f"oh_conformers: no trajectories in {REFERENCES} (make extra-data)")
    refs = [read_h5md(f) for f in files]
    atoms = oh_atoms(refs[0].atomic_numbers, refs[0].positions[0])
    duration = float(refs[0].time_fs[-1] - refs[0].time_fs[0])
    dt = float(np.median(np.diff(refs[0].time_fs)))
    result = {"model": str(args.model), "references": str(REFERENCES.relative_to(ROOT)),
              "trajectories": len(refs),
              "duration_fs": duration, "dt_fs": dt,
              "atoms_H_O_C_C": list(atoms), "classes_abs_dihedral_deg": CLASSES,
              "reference": summary((r.time_fs, r.positions, atoms) for r in refs)}
    model = load_model(args.model, device="cpu", threads=1)
    pos0 = np.stack([r.positions[0] for r in refs])
    vel0 = np.stack([r.velocities[0] for r in refs])
    for label, restore in (("model_default", None), ("model_no_restoration", False)):
        runs = model.propagate(pos0, vel0, duration_fs=duration, dt_fs=dt,
                               restore_energy=restore, unphysical="warn")
        result[label] = summary((t.time_fs, t.positions.astype(np.float64), atoms)
                                for t in runs)
    write_json(result, args.out)
    for label in ("reference", "model_default", "model_no_restoration"):
        s = result[label]
        parts = [f"{name} {_cm(s[name]['mean_cm'])} +- {_cm(s[name]['std_cm'])} "
                 f"({s[name]['share_of_periods']:.0%})" for name in CLASSES]
        print(f"{label}: {', '.join(parts)}, difference {_cm(s['anti_minus_gauche_cm'])}; "
              f"all: spread {_cm(s['all']['std_cm'])}, robust "
              f"{_cm(s['all']['robust_spread_cm'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
