"""H5MD 1.1 files (h5py): one molecule's trajectory with velocities, energies and provenance.

Layout written (https://www.nongnu.org/h5md/h5md.html)::

    /h5md                        attrs version=[1, 1]
        author/                  attrs name
        creator/                 attrs name="gicnet", version
    /particles/molecule/
        box/                     attrs dimension=3, boundary=["none"]*3
        position/{step,time,value}   value (T, N, 3) unit "angstrom", time unit "fs"
        velocity/{step,time,value}   value (T, N, 3) unit "angstrom fs-1"
        species                  (N,) int, atomic numbers
        mass                     (N,) unit "u"
    /observables/potential_energy/{step,time,value}   (T,) unit "eV"  (when known)
    /observables/kinetic_energy/{step,time,value}     (T,) unit "eV"  (when known)
    /parameters/gicnet           attrs info_json: the provenance as JSON

``step`` is the frame index; ``time`` is shared between elements by hard links.
The reader converts the units it knows (Å, nm, bohr; fs, ps; eV, kJ/mol, kcal/mol,
Hartree) and treats a dataset without a ``unit`` attribute as already in gicnet units.
It reads a dataset only once its shape fits in the bytes the file stores for it
(:func:`gicnet_runtime.io.limits.check_h5_dataset`) and the molecule has at most
:data:`~gicnet_runtime.io.limits.MAX_ATOMS` atoms; ``info_json`` is bounded JSON
(:mod:`gicnet_runtime.jsonsafe`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from gicnet_runtime import jsonsafe
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError
from gicnet_runtime.io import limits
from gicnet_runtime.io.support import jsonable, require
from gicnet_runtime.units import BOHR_IN_A, HARTREE_IN_EV, KCAL_PER_MOL_IN_EV, KJ_PER_MOL_IN_EV

_GROUP = "molecule"
_LENGTH_A = {"angstrom": 1.0, "A": 1.0, "Å": 1.0, "nm": 10.0, "bohr": BOHR_IN_A}
_TIME_FS = {"fs": 1.0, "ps": 1000.0}
_VELOCITY_A_PER_FS = {
    "angstrom fs-1": 1.0, "A fs-1": 1.0, "Å fs-1": 1.0, "angstrom/fs": 1.0,
    "nm ps-1": 1e-2, "angstrom ps-1": 1e-3, "A ps-1": 1e-3,
}
_ENERGY_EV = {"eV": 1.0, "kJ mol-1": KJ_PER_MOL_IN_EV, "kcal mol-1": KCAL_PER_MOL_IN_EV,
              "hartree": HARTREE_IN_EV, "Hartree": HARTREE_IN_EV}
_MASS_AMU = {"u": 1.0, "amu": 1.0, "Da": 1.0}


def write_h5md_blocks(path: Path, blocks: Iterable[Trajectory], info: dict, **_) -> None:
    """Write the frames of ``blocks`` (consecutive pieces of one trajectory) as H5MD 1.1
    to ``path`` (overwriting it), in resizable datasets appended block by block."""
    h5py = require("h5py")
    with h5py.File(path, "w") as f:
        _write_header(f)
        series = None
        for traj in blocks:
            if series is None:
                series = _create_series(f, traj)
            _append(series, traj)
        if series is None:
            raise InputError("no frames to write")
        params = f.create_group("parameters/gicnet")
        params.attrs["info_json"] = json.dumps(info, sort_keys=True, default=jsonable)


def write_h5md(traj: Trajectory, path: Path) -> None:
    """Write ``traj`` as H5MD 1.1 to ``path`` (overwriting it)."""
    write_h5md_blocks(path, [traj], traj.info)


def _create_series(f, traj: Trajectory) -> dict:
    """The empty, resizable time series of the trajectory's elements: name -> dataset."""
    particles = f.create_group(f"particles/{_GROUP}")
    box = particles.create_group("box")
    box.attrs["dimension"] = 3
    box.attrs["boundary"] = np.array([b"none"] * 3, dtype="S4")
    particles.create_dataset("species", data=traj.atomic_numbers)
    particles.create_dataset("mass", data=traj.masses).attrs["unit"] = "u"
    frame = traj.positions.shape[1:]
    series = {}
    position = particles.create_group("position")
    series["step"] = position.create_dataset("step", (0,), np.int64, maxshape=(None,))
    series["time"] = position.create_dataset("time", (0,), np.float64, maxshape=(None,))
    series["time"].attrs["unit"] = "fs"
    for name, group, dtype, unit in (("positions", position, traj.positions.dtype, "angstrom"),
                                     ("velocities", particles.create_group("velocity"),
                                      traj.velocities.dtype, "angstrom fs-1")):
        series[name] = _value(group, (0, *frame), dtype, unit)
    _link_clock(particles["velocity"], position)
    for name in ("potential_energy", "kinetic_energy"):
        if getattr(traj, name) is not None:
            group = f.require_group("observables").create_group(name)
            series[name] = _value(group, (0,), np.float64, "eV")
            _link_clock(group, position)
    return series


def _value(group, shape: tuple, dtype, unit: str):
    chunks = (min(1024, 2**20 // max(1, int(np.prod(shape[1:])) * 8)), *shape[1:])
    dataset = group.create_dataset("value", shape, dtype, maxshape=(None, *shape[1:]),
                                   chunks=chunks)
    dataset.attrs["unit"] = unit
    return dataset


def _link_clock(group, clock) -> None:
    group["step"] = clock["step"]
    group["time"] = clock["time"]


def _append(series: dict, traj: Trajectory) -> None:
    """Append ``traj``'s frames to every series."""
    start = series["time"].shape[0]
    stop = start + traj.n_frames
    values = {"step": np.arange(start, stop, dtype=np.int64), "time": traj.time_fs,
              "positions": traj.positions, "velocities": traj.velocities,
              "potential_energy": traj.potential_energy, "kinetic_energy": traj.kinetic_energy}
    for name, dataset in series.items():
        if values[name] is None:
            raise InputError(f"a block of the trajectory lacks {name}")
        dataset.resize(stop, axis=0)
        dataset[start:stop] = values[name]


def _write_header(f) -> None:
    h5md = f.create_group("h5md")
    h5md.attrs["version"] = np.array([1, 1], dtype=np.int32)
    h5md.create_group("author").attrs["name"] = "gicnet"
    creator = h5md.create_group("creator")
    creator.attrs["name"] = "gicnet"
    creator.attrs["version"] = _gicnet_version()


def read_h5md(path: Path, **_) -> Trajectory:
    """Read a single-molecule H5MD file; see the module docstring for the layout."""
    h5py = require("h5py")
    with h5py.File(path, "r") as f:
        if "h5md" not in f:
            raise InputError("not an H5MD file (no /h5md group)")
        particles = _particle_group(f)
        if "position" not in particles:
            raise InputError("H5MD file has no particles position")
        if "velocity" not in particles:
            raise InputError("H5MD file has no velocities (particles/*/velocity)")
        _check_atoms(particles["position"])
        positions = _values(particles["position"], _LENGTH_A)
        velocities = _values(particles["velocity"], _VELOCITY_A_PER_FS)
        time_fs = _times(particles["position"], positions.shape[0])
        atomic_numbers = _species(particles, h5py)
        masses = _masses(particles, atomic_numbers)
        energies = {}
        for name in ("potential_energy", "kinetic_energy"):
            element = f.get(f"observables/{name}")
            energies[name] = None if element is None else _values(element, _ENERGY_EV)
        info = _info(f)
    return Trajectory(time_fs, positions, velocities, atomic_numbers, masses, info=info,
                      **energies)


def _particle_group(f):
    particles = f.get("particles")
    if particles is None or len(particles) == 0:
        raise InputError("H5MD file has no particles group")
    if _GROUP in particles:
        return particles[_GROUP]
    if len(particles) > 1:
        raise InputError(f"H5MD file has several particle groups {sorted(particles)}; "
                         f"expected one or one named {_GROUP!r}")
    return next(iter(particles.values()))


def _unit_factor(dataset, table: dict[str, float]) -> float:
    unit = dataset.attrs.get("unit")
    if unit is None:
        return 1.0
    unit = unit.decode() if isinstance(unit, bytes) else str(unit)
    if unit not in table:
        raise InputError(f"unsupported unit {unit!r} for {dataset.name}")
    return table[unit]


def _read(dataset) -> np.ndarray:
    """All of ``dataset``, once its shape has been checked against its stored bytes."""
    limits.check_h5_dataset(dataset)
    return dataset[()]


def _check_atoms(element) -> None:
    shape = element["value"].shape or ()
    if len(shape) == 3:  # other shapes are refused by Trajectory, after reading
        limits.check_atom_count(shape[1], "H5MD particles position")


def _values(element, table: dict[str, float]) -> np.ndarray:
    value = element["value"]
    return np.asarray(_read(value), dtype=np.float64) * _unit_factor(value, table)


def _times(element, n_frames: int) -> np.ndarray:
    """(T,) fs; H5MD allows an explicit time per frame or a scalar fixed interval."""
    if "time" not in element:
        raise InputError(f"H5MD element {element.name} has no time")
    time = element["time"]
    factor = _unit_factor(time, _TIME_FS)
    if time.shape == ():
        offset = float(time.attrs.get("offset", 0.0))
        return (offset + float(_read(time)) * np.arange(n_frames)) * factor
    return np.asarray(_read(time), dtype=np.float64) * factor


def _species(particles, h5py) -> np.ndarray:
    if "species" not in particles:
        raise InputError("H5MD file has no species (atomic numbers)")
    species = particles["species"]
    if isinstance(species, h5py.Group):  # time-dependent: take the first frame
        limits.check_h5_dataset(species["value"])
        species = species["value"][0]
    else:
        species = _read(species)
    return np.asarray(species, dtype=np.int64)


def _masses(particles, atomic_numbers: np.ndarray) -> np.ndarray:
    if "mass" in particles:
        mass = particles["mass"]
        return np.asarray(_read(mass), dtype=np.float64) * _unit_factor(mass, _MASS_AMU)
    data = require("ase.data")
    return np.asarray(data.atomic_masses[atomic_numbers], dtype=np.float64)


def _info(f) -> dict:
    params = f.get("parameters/gicnet")
    if params is None or "info_json" not in params.attrs:
        return {}
    info = jsonsafe.loads(params.attrs["info_json"], what="parameters/gicnet info_json")
    if not isinstance(info, dict):
        raise InputError("parameters/gicnet info_json is not a JSON object")
    return info


def _gicnet_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("gicnet")
    except metadata.PackageNotFoundError:
        return "unknown"
