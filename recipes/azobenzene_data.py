"""Azobenzene trajectories through GFN2-xTB's cis-trans transition region (issue 17).

    pip install rdkit && python recipes/azobenzene_data.py     # or: make azobenzene-data
    python recipes/azobenzene_data.py --check                   # only verify the checksum

The path comes from ``recipes/azobenzene_scan.py``: on GFN2-xTB the lowest route between
trans and cis is inversion at one nitrogen (barrier ~13 kcal/mol, one CNN angle near
linear, where the CNNC dihedral flips).  Each trajectory samples that barrier top:

1. the barrier-top structure: trans azobenzene from SMILES (RDKit), relaxed with one CNN
   angle held at ``restraint.angle_deg`` by ASE's ``FixInternals`` (built once, cached as
   ``barrier_top.xyz``);
2. Langevin dynamics at ``temperature_K`` for ``restrained_fs`` with that angle still held,
   so that every other mode is thermal;
3. the angle released, fresh Maxwell-Boltzmann velocities at ``temperature_K`` (no net
   momentum, no rotation), and velocity Verlet for ``half_fs`` forward and, from the same
   state with reversed velocities, ``half_fs`` backward.  The backward half, reversed, and
   the forward half make one NVE trajectory of ``2 half_fs`` through the barrier region at
   its middle frame (``info["release_frame"]``).

Where each half ends (cis or trans, from the CNNC dihedral, ``gicnet_runtime.analysis.
isomers``) is stored in ``info``: ``start_isomer`` (end of the backward half) and
``end_isomer`` (end of the forward half); a trajectory whose two differ crossed the
barrier, at ``info["transition_fs"]`` (the last crossing of CNNC = 90°).

Settings live in ``recipes/azobenzene_data.json`` with their sha256 in
``recipes/azobenzene_data.sha256``, checked before anything runs, as for ethanol.  Output:
``data/azobenzene/{train,heldout}/azobenzene_seed<seed>.h5`` (H5MD; existing files are
kept, so an interrupted run resumes) and ``data/azobenzene/manifest.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing gicnet
sys.path.insert(0, str(ROOT / "recipes"))

import azobenzene_scan  # noqa: E402
from ethanol_data import (  # noqa: E402
    file_sha256,
    load_checked_settings,
    recipe_parser,
    settings_sha256,
    split_seeds,
)

from gicnet_runtime.errors import GicnetError  # noqa: E402

SETTINGS = ROOT / "recipes" / "azobenzene_data.json"
CHECKSUM = ROOT / "recipes" / "azobenzene_data.sha256"
DEFAULT_OUT = ROOT / "data" / "azobenzene"
CNNC = azobenzene_scan.CNNC
#: A run's outcome is read over its last this-many fs.
OUTCOME_WINDOW_FS = 10.0


def outcome_window(frame_fs: float) -> int:
    """Frames in OUTCOME_WINDOW_FS at ``frame_fs`` fs per frame (at least 1)."""
    return max(1, round(OUTCOME_WINDOW_FS / frame_fs))


def barrier_top(settings: dict, out: Path):
    """The relaxed barrier-top structure (cached in ``out/barrier_top.xyz``)."""
    import ase.io
    from ase.constraints import FixInternals

    path = out / "barrier_top.xyz"
    if path.exists():
        return ase.io.read(path)
    a1, a2, a3 = settings["restraint"]["angle_atoms"]
    value = float(settings["restraint"]["angle_deg"])
    atoms, _ = azobenzene_scan.minimum("trans", settings["structure_seed"])
    # towards the target in steps, as in the scan, so that FixInternals can hold each one
    for angle in np.linspace(atoms.get_angle(a1, a2, a3), value, 8)[1:]:
        atoms.set_angle(a1, a2, a3, angle, indices=azobenzene_scan.side(atoms, a2, a1))
        azobenzene_scan.relax(atoms, FixInternals(angles_deg=[[float(angle), [a1, a2, a3]]]))
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.xyz")
    atoms.write(tmp)
    tmp.replace(path)
    return atoms


def half(atoms, settings: dict, n_steps: int):
    """(positions, velocities Å/fs, potential eV, kinetic eV) of ``n_steps`` of velocity
    Verlet from ``atoms`` (frame 0 included), ``atoms`` left unchanged."""
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from gicnet_runtime.reference.engines import make_calculator
    from gicnet_runtime.units import ase_velocities_to_a_per_fs

    atoms = atoms.copy()
    atoms.calc = make_calculator(settings["engine"])
    rows = []

    def record() -> None:
        rows.append((atoms.get_positions(), ase_velocities_to_a_per_fs(atoms.get_velocities()),
                     atoms.get_potential_energy(), atoms.get_kinetic_energy()))

    dyn = VelocityVerlet(atoms, timestep=settings["dt_fs"] * units.fs)
    dyn.attach(record, interval=settings["save_every"])
    dyn.run(n_steps)
    return [np.array(column) for column in zip(*rows)]


def run_trajectory(settings: dict, seed: int, top):
    """One trajectory through the barrier region (see the module docstring)."""
    from ase import units
    from ase.constraints import FixInternals
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import (
        MaxwellBoltzmannDistribution,
        Stationary,
        ZeroRotation,
    )

    from gicnet_runtime.analysis.isomers import outcome, transition_frame
    from gicnet_runtime.core.trajectory import Trajectory
    from gicnet_runtime.reference.engines import make_calculator

    rng = np.random.default_rng(seed)
    atoms = top.copy()
    a1, a2, a3 = settings["restraint"]["angle_atoms"]
    atoms.set_constraint(FixInternals(
        angles_deg=[[float(settings["restraint"]["angle_deg"]), [a1, a2, a3]]]))
    atoms.calc = make_calculator(settings["engine"])
    temperature = settings["temperature_K"]
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    dt = settings["dt_fs"]
    Langevin(atoms, timestep=dt * units.fs, temperature_K=temperature,
             friction=settings["friction_per_fs"] / units.fs, fixcm=False, rng=rng,
             ).run(round(settings["restrained_fs"] / dt))
    atoms.set_constraint()
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms, preserve_temperature=False)
    ZeroRotation(atoms, preserve_temperature=False)
    n_steps = round(settings["half_fs"] / dt)
    forward = half(atoms, settings, n_steps)
    atoms.set_velocities(-atoms.get_velocities())
    backward = half(atoms, settings, n_steps)
    positions = np.concatenate([backward[0][::-1], forward[0][1:]])
    velocities = np.concatenate([-backward[1][::-1], forward[1][1:]])
    potential = np.concatenate([backward[2][::-1], forward[2][1:]])
    kinetic = np.concatenate([backward[3][::-1], forward[3][1:]])
    time_fs = np.arange(len(positions)) * dt * settings["save_every"]
    cnnc = dihedral_rad(positions, CNNC)
    window = outcome_window(dt * settings["save_every"])
    start, end = outcome(cnnc[::-1], window), outcome(cnnc, window)
    crossed = transition_frame(cnnc)
    info = {key: settings[key] for key in ("engine", "temperature_K", "dt_fs", "restraint",
                                           "restrained_fs", "half_fs", "save_every")}
    info.update(
        seed=int(seed), molecule="azobenzene", recipe="recipes/azobenzene_data.py",
        release_frame=len(backward[0]) - 1, start_isomer=start, end_isomer=end,
        transition_fs=(float(time_fs[crossed]) if start != end and "undecided"
                       not in (start, end) and crossed is not None else None),
        cnnc_atoms=list(CNNC), total_energy_drift_eV=float(np.ptp(potential + kinetic)),
    )
    return Trajectory(time_fs, positions, velocities, top.numbers, top.get_masses(),
                      potential, kinetic, info)


def dihedral_rad(positions: np.ndarray, atoms: tuple[int, int, int, int]) -> np.ndarray:
    """(T,) dihedral, rad, of four atoms over frames (T, N, 3)."""
    from gicnet_runtime.core.internal import dihedrals

    return dihedrals(positions, *atoms)


def _run_and_write(args) -> str:
    from gicnet_runtime.io.formats import write_trajectory

    settings, seed, top_path, path = args
    import ase.io

    write_trajectory(run_trajectory(settings, seed, ase.io.read(top_path)), path,
                     settings["format"])
    return str(path)


def run(out: Path, workers: int) -> dict:
    """Generate every split into ``out``; return the manifest (also written there)."""
    from gicnet_runtime.io.formats import read_trajectory
    from gicnet_runtime.reference.simulate import _parallel_map

    settings = load_checked_settings(SETTINGS, CHECKSUM)
    start = time.perf_counter()
    barrier_top(settings, out)
    manifest = {"settings_sha256": settings_sha256(settings), "settings": settings,
                "workers": workers, "splits": {}}
    for name, split in settings["splits"].items():
        split_start = time.perf_counter()
        (out / name).mkdir(parents=True, exist_ok=True)
        jobs = [(settings, seed, out / "barrier_top.xyz",
                 out / name / f"azobenzene_seed{seed}.h5") for seed in split_seeds(split)]
        todo = [job for job in jobs if not job[3].exists()]
        _parallel_map(_run_and_write, todo, workers, progress=True)
        infos = [read_trajectory(job[3]).info for job in jobs]
        ends = [i["end_isomer"] for i in infos]
        manifest["splits"][name] = {
            "wall_time_s": time.perf_counter() - split_start,
            "end_isomers": {k: ends.count(k) for k in ("cis", "trans", "undecided")},
            "crossed": sum(i["transition_fs"] is not None for i in infos),
            "largest_energy_drift_eV": max(i["total_energy_drift_eV"] for i in infos),
            "files": {job[3].name: file_sha256(job[3]) for job in jobs},
        }
    manifest["wall_time_s"] = time.perf_counter() - start
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def main(argv: list[str] | None = None) -> int:
    args = recipe_parser(__doc__, DEFAULT_OUT).parse_args(argv)
    try:
        if args.check:
            load_checked_settings(SETTINGS, CHECKSUM)
            print(f"{SETTINGS.name}: checksum OK")
            return 0
        manifest = run(args.out, args.workers)
    except GicnetError as err:
        print(f"azobenzene_data: error: {err}", file=sys.stderr)
        return 1
    print(f"wall time {manifest['wall_time_s']:.0f} s")
    for name, split in manifest["splits"].items():
        print(f"{name}: {len(split['files'])} trajectories, ends {split['end_isomers']}, "
              f"{split['crossed']} crossed the barrier")
    return 0


if __name__ == "__main__":
    sys.exit(main())
