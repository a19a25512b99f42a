"""The npz layout MLatom's GICnet reads: keys xyz, v, t, ep, ek, m (and optional z).

=====  ==========  ==================================================
key    shape       unit
=====  ==========  ==================================================
xyz    (T, N, 3)   Å
v      (T, N, 3)   Å/fs
t      (T,)        fs
ep     (T,)        potential energy, Hartree by default (MLatom's unit)
ek     (T,)        kinetic energy, same unit as ep
m      (N,)        amu
z      (N,)        atomic numbers (gicnet extension; optional)
info   ()          provenance as a JSON string (gicnet extension; optional)
=====  ==========  ==================================================

Without ``z`` the elements are inferred from the masses (the one element whose
standard atomic mass lies within :data:`MASS_MATCH_AMU`), so isotopes need ``z``.
The energy unit of ep/ek is chosen with ``energy_unit`` ("Hartree", "eV", "kcal/mol").
Arrays are read only once their .npy headers fit in the file
(:func:`gicnet_runtime.io.limits.check_npz`); ``info`` is bounded JSON
(:mod:`gicnet_runtime.jsonsafe`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from gicnet_runtime import jsonsafe
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError
from gicnet_runtime.io import limits
from gicnet_runtime.io.support import jsonable, require
from gicnet_runtime.units import HARTREE_IN_EV, KCAL_PER_MOL_IN_EV

ENERGY_UNITS_IN_EV = {"Hartree": HARTREE_IN_EV, "eV": 1.0, "kcal/mol": KCAL_PER_MOL_IN_EV}
#: Largest |mass - standard atomic mass|, amu, accepted when inferring an element.
MASS_MATCH_AMU = 0.05


def _energy_factor(energy_unit: str) -> float:
    if energy_unit not in ENERGY_UNITS_IN_EV:
        raise InputError(f"unknown npz energy unit {energy_unit!r}; choose one of "
                         f"{sorted(ENERGY_UNITS_IN_EV)}")
    return ENERGY_UNITS_IN_EV[energy_unit]


def write_npz_blocks(path: Path, blocks: Iterable[Trajectory], info: dict,
                     energy_unit: str = "Hartree", **_) -> None:
    """Write the frames of ``blocks`` in MLatom's npz layout, energies in ``energy_unit``
    (npz cannot be appended to: the blocks are gathered in memory first)."""
    write_npz(_joined(list(blocks), info), path, energy_unit)


def _joined(blocks: list[Trajectory], info: dict) -> Trajectory:
    """One Trajectory of the blocks' frames in order."""
    if len(blocks) == 1:
        return dataclasses.replace(blocks[0], info=info)

    def cat(name):
        parts = [getattr(b, name) for b in blocks]
        return None if parts[0] is None else np.concatenate(parts)

    first = blocks[0]
    return Trajectory(cat("time_fs"), cat("positions"), cat("velocities"), first.atomic_numbers,
                      first.masses, cat("potential_energy"), cat("kinetic_energy"), info)


def write_npz(traj: Trajectory, path: Path, energy_unit: str = "Hartree") -> None:
    """Write ``traj`` in MLatom's npz layout, energies in ``energy_unit``."""
    factor = _energy_factor(energy_unit)
    arrays = {"xyz": traj.positions, "v": traj.velocities, "t": traj.time_fs,
              "m": traj.masses, "z": traj.atomic_numbers,
              "info": np.array(json.dumps(traj.info, sort_keys=True, default=jsonable))}
    if traj.potential_energy is not None:
        arrays["ep"] = traj.potential_energy / factor
    if traj.kinetic_energy is not None:
        arrays["ek"] = traj.kinetic_energy / factor
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def read_npz(path: Path, frame_spacing_fs: float | None = None,
             energy_unit: str = "Hartree", **_) -> Trajectory:
    """Read an MLatom npz trajectory (see the module docstring for keys and units)."""
    factor = _energy_factor(energy_unit)
    limits.check_npz(path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: _array(data, key) for key in data.files}
    for key in ("xyz", "m"):
        if key not in arrays:
            raise InputError(f"npz file has no {key!r} array")
    if "v" not in arrays:
        raise InputError("npz file has no velocities ('v' array)")
    positions = arrays["xyz"]
    if positions.ndim == 3:  # other shapes are refused by Trajectory
        limits.check_atom_count(positions.shape[1], "npz 'xyz'")
    masses = arrays["m"]
    z = arrays["z"] if "z" in arrays else elements_from_masses(masses)
    energies = {name: None if key not in arrays else arrays[key] * factor
                for name, key in (("potential_energy", "ep"), ("kinetic_energy", "ek"))}
    info = jsonsafe.loads(str(arrays["info"]), what="npz 'info'") if "info" in arrays else {}
    if not isinstance(info, dict):
        raise InputError("npz 'info' is not a JSON object")
    return Trajectory(_times(arrays, positions.shape[0], frame_spacing_fs), positions,
                      arrays["v"], z, masses, info=info, **energies)


def _array(data, key: str) -> np.ndarray:
    try:
        return np.asarray(data[key])
    except ValueError:
        raise InputError(f"npz array {key!r} holds pickled objects, which gicnet never loads"
                         ) from None


def _times(arrays: dict, n_frames: int, frame_spacing_fs: float | None) -> np.ndarray:
    if "t" in arrays:
        return arrays["t"]
    if frame_spacing_fs is None or not frame_spacing_fs > 0:
        raise InputError("npz file has no times ('t'); pass a positive frame_spacing_fs")
    return np.arange(n_frames) * float(frame_spacing_fs)


def elements_from_masses(masses_amu: np.ndarray) -> np.ndarray:
    """(N,) int atomic numbers of the elements whose standard masses match ``masses_amu``.

    Raises InputError when a mass matches no element or several within MASS_MATCH_AMU.
    """
    data = require("ase.data")
    table = np.asarray(data.atomic_masses, dtype=np.float64)
    table[0] = np.nan  # index 0 is ASE's placeholder "X", never a real element
    masses_amu = np.asarray(masses_amu, dtype=np.float64).reshape(-1)
    numbers = []
    for mass in masses_amu:
        candidates = np.flatnonzero(np.abs(table - mass) <= MASS_MATCH_AMU)
        if len(candidates) != 1:
            what = "no element" if len(candidates) == 0 else f"elements {candidates.tolist()}"
            raise InputError(f"mass {mass} amu matches {what}; add a 'z' array of atomic numbers")
        numbers.append(int(candidates[0]))
    return np.array(numbers, dtype=np.int64)
