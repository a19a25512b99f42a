"""Generate the ethanol training and held-out trajectories of the shipped GICnet model.

    python recipes/ethanol_data.py                 # or: make data
    python recipes/ethanol_data.py --check         # only verify the settings checksum

Settings live in ``recipes/ethanol_data.json``; their sha256 (of the canonical JSON:
sorted keys, no whitespace) is recorded in ``recipes/ethanol_data.sha256`` and checked
before anything runs, so the data on disk always matches a reviewed recipe.  Output:
``data/ethanol/train/*.h5`` and ``data/ethanol/heldout/*.h5`` (H5MD, one trajectory per
seed; existing files are kept, so an interrupted run resumes) and
``data/ethanol/manifest.json`` with the settings hash, wall time, file checksums and the
temperatures measured.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing gicnet

from gicnet_runtime.errors import GicnetError, InputError  # noqa: E402
from gicnet_runtime.io.formats import read_trajectory  # noqa: E402
from gicnet_runtime.reference.simulate import SimulationSettings, simulate_to_files  # noqa: E402

SETTINGS = ROOT / "recipes" / "ethanol_data.json"
CHECKSUM = ROOT / "recipes" / "ethanol_data.sha256"
DEFAULT_OUT = ROOT / "data" / "ethanol"


def settings_sha256(settings: dict) -> str:
    """sha256 of the canonical JSON of ``settings`` (sorted keys, no whitespace)."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_checked_settings(path: Path = SETTINGS, checksum: Path = CHECKSUM) -> dict:
    """The recipe settings, after verifying them against the recorded checksum."""
    settings = json.loads(path.read_text())
    recorded = checksum.read_text().split()[0]
    actual = settings_sha256(settings)
    if actual != recorded:
        raise InputError(f"{path.name} has sha256 {actual}, {checksum.name} records "
                         f"{recorded}: review the change and update the checksum")
    return settings


def split_seeds(split: dict) -> list[int]:
    return list(range(split["first_seed"], split["first_seed"] + split["count"]))


def temperature_summary(paths: list[Path]) -> dict:
    """Mean NVE and equilibration temperatures, K, with standard errors over trajectories."""
    nve, equilibration = [], []
    for path in paths:
        info = read_trajectory(path).info
        nve.append(info["nve_temperature_K"])
        equilibration.append(info["equilibration_temperature_K"])

    def mean_and_error(values: list[float]) -> dict:
        values = np.asarray(values)
        error = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
        return {"mean_K": float(values.mean()), "standard_error_K": float(error)}

    return {"nve": mean_and_error(nve), "equilibration_second_half": mean_and_error(equilibration)}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run(out: Path, workers: int, splits: list[str] | None = None) -> dict:
    """Generate the splits (default: every split) into ``out``; return the manifest
    (also written there, as manifest_<splits>.json when only some splits are made)."""
    settings = load_checked_settings()
    simulation = SimulationSettings(**settings["simulation"])
    manifest = {"settings_sha256": settings_sha256(settings), "settings": settings,
                "workers": workers, "splits": {}}
    start = time.perf_counter()
    chosen = list(settings["splits"]) if splits is None else splits
    unknown = sorted(set(chosen) - set(settings["splits"]))
    if unknown:
        raise InputError(f"unknown split(s) {', '.join(unknown)}")
    for name in chosen:
        split = settings["splits"][name]
        split_start = time.perf_counter()
        paths = simulate_to_files(simulation, split_seeds(split), out / name,
                                  fmt=settings["format"], workers=workers)
        manifest["splits"][name] = {
            "wall_time_s": time.perf_counter() - split_start,
            "temperatures": temperature_summary(paths),
            "files": {p.name: file_sha256(p) for p in paths},
        }
    manifest["wall_time_s"] = time.perf_counter() - start
    name = "manifest.json" if splits is None else f"manifest_{'_'.join(chosen)}.json"
    (out / name).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def recipe_parser(doc: str, default_out: Path) -> argparse.ArgumentParser:
    """The options every data recipe takes: --out, --workers and --check."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=default_out, help="output folder")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--check", action="store_true", help="only verify the checksum")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = recipe_parser(__doc__, DEFAULT_OUT)
    parser.add_argument("--splits", nargs="+", default=None,
                        help="generate only these splits (default: all)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            load_checked_settings()
            print(f"{SETTINGS.name}: checksum OK")
            return 0
        manifest = run(args.out, args.workers, args.splits)
    except GicnetError as err:
        print(f"ethanol_data: error: {err}", file=sys.stderr)
        return 1
    print(f"wall time {manifest['wall_time_s']:.0f} s")
    for name, split in manifest["splits"].items():
        temps = split["temperatures"]
        print(f"{name}: {len(split['files'])} trajectories, "
              f"NVE {temps['nve']['mean_K']:.1f} ± {temps['nve']['standard_error_K']:.1f} K, "
              f"equilibration {temps['equilibration_second_half']['mean_K']:.1f} ± "
              f"{temps['equilibration_second_half']['standard_error_K']:.1f} K")
    return 0


if __name__ == "__main__":
    sys.exit(main())
