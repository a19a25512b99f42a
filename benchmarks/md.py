"""Baselines: ASE velocity-Verlet MD with ML and semi-empirical potentials.

Each baseline integrates one trajectory from the same initial condition as gicnet, with a
time step equal to gicnet's output frame spacing, and keeps every step's positions and
velocities (a frame every step, as gicnet returns them).  Engines, as gicnet's reference
MD builds them (gicnet_runtime.engines): ANI-1x (TorchANI 2.2.4, float64, the 8-model
ensemble or its first model alone) and GFN2-xTB (tblite, SCC accuracy 0.1).

Imports torch, torchani, ase and tblite lazily: none of them is needed for ``--skip-md``.
"""

from __future__ import annotations

import time

import numpy as np

from gicnet_runtime.units import a_per_fs_to_ase_velocities, ase_velocities_to_a_per_fs

#: Steps run before timing starts (calculator set-up, first-call allocations).
WARMUP_STEPS = 10
#: Baselines: name -> what it is.
BASELINES = {
    "ani1x_ensemble": "ANI-1x, 8-model ensemble (TorchANI 2.2.4, float64)",
    "ani1x_single": "ANI-1x, first model of the ensemble (TorchANI 2.2.4, float64)",
    "gfn2_xtb": "GFN2-xTB (tblite, accuracy 0.1)",
}


def calculator(name: str):
    """A fresh ASE calculator for baseline ``name`` (see BASELINES)."""
    from gicnet_runtime.engines import build_ani1x_model, make_calculator

    if name == "ani1x_ensemble":
        return make_calculator("ani1x")
    if name == "ani1x_single":
        import torchani

        ensemble = build_ani1x_model()
        single = torchani.nn.Sequential(ensemble[0], ensemble[1][0], ensemble[2])
        return torchani.ase.Calculator(ensemble.species, single)
    if name == "gfn2_xtb":
        return make_calculator("gfn2")
    raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")


def run_baseline(name: str, atomic_numbers: np.ndarray, positions: np.ndarray,
                 velocities: np.ndarray, duration_fs: float, dt_fs: float) -> dict:
    """Velocity-Verlet NVE for ``duration_fs``; fs of trajectory per wall second.

    positions: (N, 3) Å; velocities: (N, 3) Å/fs; dt_fs: time step and frame spacing, fs.
    The total-energy drift is reported as a sanity check of the run.
    """
    from ase import Atoms, units
    from ase.md.verlet import VelocityVerlet

    atoms = Atoms(numbers=atomic_numbers, positions=positions)
    atoms.set_velocities(a_per_fs_to_ase_velocities(velocities))
    atoms.calc = calculator(name)
    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    dyn.run(WARMUP_STEPS)
    n_steps = int(round(duration_fs / dt_fs))
    frames_pos = np.empty((n_steps + 1, len(atoms), 3))
    frames_vel = np.empty_like(frames_pos)
    energy = np.empty(n_steps + 1)

    def keep() -> None:
        frames_pos[dyn.nsteps - WARMUP_STEPS] = atoms.positions
        frames_vel[dyn.nsteps - WARMUP_STEPS] = ase_velocities_to_a_per_fs(atoms.get_velocities())
        energy[dyn.nsteps - WARMUP_STEPS] = atoms.get_total_energy()

    keep()  # the initial frame (ASE calls observers at the start only from step 0)
    dyn.attach(keep, interval=1)
    start = time.perf_counter()
    dyn.run(n_steps)
    wall = time.perf_counter() - start
    return {"baseline": name, "what": BASELINES[name], "duration_fs": n_steps * dt_fs,
            "dt_fs": dt_fs, "steps": n_steps, "wall_s": wall,
            "fs_per_s": n_steps * dt_fs / wall, "ms_per_step": wall / n_steps * 1e3,
            "total_energy_drift_eV": float(energy[-1] - energy[0])}


def run_baselines(names: list[str], atomic_numbers, positions, velocities, duration_fs: float,
                  dt_fs: float, threads: int) -> list[dict]:
    """Every baseline in ``names`` in turn, torch fixed to ``threads`` intra-op threads."""
    import torch

    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != 1:
        torch.set_num_interop_threads(1)  # allowed once per process, before parallel work
    return [run_baseline(n, atomic_numbers, positions, velocities, duration_fs, dt_fs)
            for n in names]
