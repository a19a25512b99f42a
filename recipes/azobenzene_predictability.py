"""How predictable an isomerization outcome is on the reference potential itself.

    python recipes/azobenzene_predictability.py [--workers 2]
    # -> docs/eval/azobenzene/predictability.json (make azobenzene-insight runs it)

From every held-out release frame (``recipes/azobenzene_data.py``: the barrier region),
GFN2-xTB runs again forward and backward for ``half_fs``, as the data did, but with every
velocity perturbed by ``RELATIVE_NOISE`` of its own size (random directions, seeded).  The
fraction of runs whose outcome (``gicnet_runtime.analysis.isomers.outcome``) matches the
unperturbed reference's is the agreement a perfect model could hope for when its
per-segment errors are that small: outcomes from the barrier top are chaotic, and the
model's agreement (``insight.json``) is read against this ceiling.
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

from gicnet_runtime.analysis import isomers  # noqa: E402

#: Size of the velocity perturbation, relative to each atom's speed.
RELATIVE_NOISE = 1e-3
NOISE_SEED = 11
OUT = ROOT / "docs" / "eval" / "azobenzene" / "predictability.json"


def perturbed_outcomes(args) -> dict:
    """Forward and backward outcomes of one held-out start with perturbed velocities."""
    import ase

    from gicnet_runtime.io.formats import read_trajectory
    from gicnet_runtime.units import a_per_fs_to_ase_velocities

    path, index = args
    traj = read_trajectory(path)
    info, frame = traj.info, traj.info["release_frame"]
    settings = {key: info[key] for key in ("engine", "dt_fs", "save_every", "half_fs")}
    rng = np.random.default_rng([NOISE_SEED, index])
    vel = traj.velocities[frame]
    kick = rng.normal(size=vel.shape)
    kick *= RELATIVE_NOISE * np.linalg.norm(vel, axis=1, keepdims=True) \
        / np.linalg.norm(kick, axis=1, keepdims=True)
    window = azobenzene_data.outcome_window(settings["dt_fs"] * settings["save_every"])
    n_steps = round(settings["half_fs"] / settings["dt_fs"])
    result = {"seed": info["seed"]}
    for way, sign, reference in (("forward", 1.0, info["end_isomer"]),
                                 ("backward", -1.0, info["start_isomer"])):
        atoms = ase.Atoms(traj.atomic_numbers, traj.positions[frame], masses=traj.masses)
        atoms.set_velocities(a_per_fs_to_ase_velocities(sign * (vel + kick)))
        positions = azobenzene_data.half(atoms, settings, n_steps)[0]
        phi = azobenzene_data.dihedral_rad(positions, azobenzene_data.CNNC)
        result[way] = {"perturbed": isomers.outcome(phi, window), "reference": reference}
    return result


def main(argv: list[str] | None = None) -> int:
    from gicnet_runtime.reference.simulate import _parallel_map

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    files = sorted((ROOT / "data" / "azobenzene" / "heldout").glob("*.h5"))
    if not files:
        raise SystemExit("no held-out trajectories: run make azobenzene-data")
    start = time.perf_counter()
    runs = _parallel_map(perturbed_outcomes, [(str(f), i) for i, f in enumerate(files)],
                         args.workers, progress=True)
    pairs = [(r[way]["perturbed"], r[way]["reference"]) for r in runs
             for way in ("forward", "backward")]
    agree = isomers.agreement([p for p, _ in pairs], [r for _, r in pairs])
    result = {"relative_velocity_noise": RELATIVE_NOISE, "starts": len(files),
              "runs": len(pairs), "engine": "GFN2-xTB",
              "agreement": {"count": agree.count, "total": agree.total,
                            "undecided": agree.undecided, "value": agree.value,
                            "standard_error": agree.standard_error},
              "wall_s": time.perf_counter() - start, "workers": args.workers, "runs_detail": runs}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"reference against itself, velocities perturbed by {RELATIVE_NOISE:g}: agreement "
          f"{agree.value:.2f} ± {agree.standard_error:.2f} ({agree.count}/{agree.total}), "
          f"{result['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
