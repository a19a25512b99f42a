"""Baselines: ASE velocity-Verlet MD with ML and semi-empirical potentials.

Each baseline integrates one trajectory from the same initial condition as gicnet, with a
time step equal to gicnet's output frame spacing, and keeps every step's positions and
velocities (a frame every step, as gicnet returns them).  Engines: ANI-1x (TorchANI 2.2.4)
as gicnet's reference MD builds it (gicnet_runtime.reference.engines: float64, the 8-model
ensemble) and its first model alone, each also in float32 (the same modules ``.float()``:
TorchANI's default precision, what a user would run), and GFN2-xTB (tblite, SCC accuracy
0.1).  :func:`ani1x_flops` counts ANI-1x's network FLOPs per force call from its layers.

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
    "ani1x_ensemble_float32": "ANI-1x, 8-model ensemble (TorchANI 2.2.4, float32)",
    "ani1x_single": "ANI-1x, first model of the ensemble (TorchANI 2.2.4, float64)",
    "ani1x_single_float32": "ANI-1x, first model of the ensemble (TorchANI 2.2.4, float32)",
    "gfn2_xtb": "GFN2-xTB (tblite, accuracy 0.1)",
}
#: The reference every ratio target is stated against.
REFERENCE = "ani1x_ensemble"


def ani1x_module(name: str):
    """The torch module of an ANI-1x baseline: gicnet_train.ani1x.build_model
    (float64, 8 models), cut to its first model for ``*single*``, ``.float()`` for
    ``*float32``."""
    import torchani

    from gicnet_train.ani1x import build_model

    model = build_model()
    species = model.species
    if "single" in name:
        model = torchani.nn.Sequential(model[0], model[1][0], model[2])
    if name.endswith("float32"):
        model = model.float()
    model.species = species
    return model


def calculator(name: str):
    """A fresh ASE calculator for baseline ``name`` (see BASELINES).  TorchANI's calculator
    casts the positions to its model's parameter dtype, so a float32 module runs float32."""
    from gicnet_runtime.reference.engines import make_calculator

    if name == "ani1x_ensemble":
        return make_calculator("ani1x")
    if name.startswith("ani1x_") and name in BASELINES:
        import torchani

        model = ani1x_module(name)
        return torchani.ase.Calculator(model.species, model)
    if name == "gfn2_xtb":
        return make_calculator("gfn2")
    raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")


def ani1x_flops(name: str, atomic_numbers: np.ndarray) -> dict:
    """Network FLOPs of one ANI-1x force call for this molecule, from the modules' Linear
    layers: per atom its element's network, per model; the backward pass (forces) counted
    as twice the forward (gradients of activations and inputs).  The AEV is not counted."""
    from torch import nn

    model = ani1x_module(name)
    networks = [model[1]] if "single" in name else list(model[1])  # ANIModel(s)
    symbols = {1: "H", 6: "C", 7: "N", 8: "O"}
    forward = sum(2 * m.in_features * m.out_features
                  for net in networks for z in atomic_numbers
                  for m in net[symbols[int(z)]].modules() if isinstance(m, nn.Linear))
    return {"models": len(networks), "forward_flops": forward, "force_call_flops": 3 * forward}


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
    row = {"baseline": name, "what": BASELINES[name], "duration_fs": n_steps * dt_fs,
           "dt_fs": dt_fs, "steps": n_steps, "wall_s": wall,
           "fs_per_s": n_steps * dt_fs / wall, "ms_per_step": wall / n_steps * 1e3,
           "total_energy_drift_eV": float(energy[-1] - energy[0]),
           "total_energy_rms_eV": float(np.std(energy))}
    if name.startswith("ani1x"):
        flops = ani1x_flops(name, atomic_numbers)
        # One force call per velocity-Verlet step (ASE reuses the last step's forces).
        row["network_flops_per_force_call"] = flops["force_call_flops"]
        row["network_flops_per_fs"] = flops["force_call_flops"] / dt_fs
    return row


def run_baselines(names: list[str], atomic_numbers, positions, velocities, duration_fs: float,
                  dt_fs: float, threads: int) -> list[dict]:
    """Every baseline in ``names`` in turn, torch fixed to ``threads`` intra-op threads."""
    import torch

    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != 1:
        torch.set_num_interop_threads(1)  # allowed once per process, before parallel work
    return [run_baseline(n, atomic_numbers, positions, velocities, duration_fs, dt_fs)
            for n in names]
