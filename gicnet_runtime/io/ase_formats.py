"""Extended XYZ and ASE .traj trajectories, read through ASE.

Velocities live where ASE keeps them: as momenta (amu·Å per ASE time unit) with
explicit masses, so ``ase.io.read(...).get_velocities()`` returns them.  Per-frame
info keys: ``time_fs`` (fs), ``energy`` (potential energy, eV, read by ASE as the
calculator result), ``kinetic_energy_eV``; the first frame carries the provenance
as ``gicnet_info`` (JSON; ``gicnet_info_hex`` for the rare values extended XYZ
cannot quote).

The extended XYZ writer is gicnet's own: ASE's writes 8 decimals, which would not
round-trip; this one writes every float with 17 significant digits in the same
grammar, and the reader is ASE's.  Every file goes to ASE through :func:`read_frames`,
after the checks of :mod:`gicnet_runtime.io.limits` (claimed atom counts and array
sizes must fit in the file; JSON is bounded).
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
from gicnet_runtime.units import a_per_fs_to_ase_velocities, ase_velocities_to_a_per_fs

_PROPERTIES = "species:S:1:pos:R:3:momenta:R:3:masses:R:1"
_FLOAT = "%.17g"
#: Frames formatted per chunk (their values as Python floats: ~0.5 MB for ethanol).
_FRAMES_PER_CHUNK = 512


def write_extxyz_blocks(path: Path, blocks: Iterable[Trajectory], info: dict, **_) -> None:
    """Write the frames of ``blocks`` (consecutive pieces of one trajectory) as extended
    XYZ with full float64 precision; ``info`` goes into the first frame."""
    extxyz = require("ase.io.extxyz")
    data = require("ase.data")
    first = True
    with open(path, "w", encoding="ascii") as fh:
        for traj in blocks:
            symbols = [data.chemical_symbols[z] for z in traj.atomic_numbers]
            start = 0
            if first and info and traj.n_frames:
                # The first frame's comment line carries the provenance: ASE writes it.
                header = _frame_info(traj, 0)
                header.update(_info_entry(info))
                fh.write(f"{traj.n_atoms}\nProperties={_PROPERTIES} "
                         f"{extxyz.key_val_dict_to_str(header)}\n")
                fh.write(_atom_lines(symbols, traj.masses) % tuple(_atom_values(traj, 0, 1)[0]))
                start = 1
            first = first and not traj.n_frames
            template = _frame_template(traj, symbols)
            for chunk in range(start, traj.n_frames, _FRAMES_PER_CHUNK):
                fh.writelines(template % tuple(row) for row in
                              _frame_values(traj, chunk, chunk + _FRAMES_PER_CHUNK))


def _frame_template(traj: Trajectory, symbols: list[str]) -> str:
    """One frame as a %-template: the atom count, the comment line as ASE's
    ``key_val_dict_to_str`` writes :func:`_frame_info` (floats as ``repr``) and
    :func:`_atom_lines`."""
    comment = " ".join(['pbc="F F F"'] + [f"{key}=%r" for key, _ in _header_columns(traj)])
    return (f"{traj.n_atoms}\nProperties={_PROPERTIES} {comment}\n"
            + _atom_lines(symbols, traj.masses))


def _atom_lines(symbols: list[str], masses: np.ndarray) -> str:
    """The atom lines of a frame as a %-template of its positions and momenta (atom by
    atom, ``_FLOAT``), symbols and masses (the same in every frame) written in."""
    vectors = " ".join([_FLOAT] * 6)
    return "".join(f"{symbol} {vectors} {_FLOAT % mass}\n"
                   for symbol, mass in zip(symbols, np.asarray(masses, dtype=np.float64),
                                           strict=True))


def _atom_values(traj: Trajectory, start: int, stop: int | None = None) -> list[list[float]]:
    """Frames ``start:stop``: per frame the positions and momenta of every atom, atom by
    atom, as Python floats.  float64 first: unrolled frames are float32, and float32 momenta
    would not give the velocities back exactly."""
    velocities = np.asarray(traj.velocities[start:stop], dtype=np.float64)
    momenta = a_per_fs_to_ase_velocities(velocities) * traj.masses[None, :, None]
    positions = np.asarray(traj.positions[start:stop], dtype=np.float64)
    return np.concatenate([positions, momenta], axis=-1).reshape(
        len(momenta), 6 * traj.n_atoms).tolist()


def _frame_values(traj: Trajectory, start: int, stop: int) -> list[list[float]]:
    """Frames ``start:stop``: per frame the values of :func:`_frame_template`."""
    header = np.stack([np.asarray(values[start:stop], dtype=np.float64)
                       for _, values in _header_columns(traj)], axis=-1).tolist()
    return [h + a for h, a in zip(header, _atom_values(traj, start, stop), strict=True)]


def _header_columns(traj: Trajectory) -> list[tuple[str, np.ndarray]]:
    """The per-frame keys of the comment line, in order, with their (T,) values: the time
    and the energies the trajectory has."""
    return [(key, values) for key, values in (("time_fs", traj.time_fs),
                                              ("energy", traj.potential_energy),
                                              ("kinetic_energy_eV", traj.kinetic_energy))
            if values is not None]


def _frame_info(traj: Trajectory, i: int) -> dict:
    return {"pbc": "F F F", **{key: float(values[i]) for key, values in _header_columns(traj)}}


def _info_entry(info: dict) -> dict:
    """Provenance as ASE-style JSON; hex-encoded JSON when it holds a backslash.

    ASE's comment-line parser drops backslashes, and JSON needs them for quotes and
    non-ASCII characters inside strings.
    """
    text = json.dumps(info, sort_keys=True, default=jsonable)
    if "\\" in text:
        return {"gicnet_info_hex": text.encode().hex()}
    return {"gicnet_info": "_JSON " + text}


def write_traj_blocks(path: Path, blocks: Iterable[Trajectory], info: dict, **_) -> None:
    """Write the frames of ``blocks`` as an ASE .traj file (energies as single-point
    calculator results); ``info`` goes into the first frame."""
    require("ase")
    from ase.io.trajectory import Trajectory as AseTrajectory

    info0 = json.loads(json.dumps(info, default=jsonable))
    first = True
    with AseTrajectory(str(path), "w") as writer:
        for traj in blocks:
            for i in range(traj.n_frames):
                atoms = frame_atoms(traj, i)
                if first and info0:
                    atoms.info["gicnet_info"] = info0
                first = False
                writer.write(atoms)


def frame_atoms(traj: Trajectory, i: int):
    """Frame ``i`` as ase.Atoms: velocities in ASE units, time and kinetic energy in
    ``info``, the potential energy as a single-point calculator result."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = Atoms(numbers=traj.atomic_numbers, positions=traj.positions[i], masses=traj.masses)
    atoms.set_velocities(a_per_fs_to_ase_velocities(traj.velocities[i].astype(np.float64)))
    atoms.info = {"time_fs": float(traj.time_fs[i])}
    if traj.kinetic_energy is not None:
        atoms.info["kinetic_energy_eV"] = float(traj.kinetic_energy[i])
    if traj.potential_energy is not None:
        atoms.calc = SinglePointCalculator(atoms, energy=float(traj.potential_energy[i]))
    return atoms


def read_extxyz(path: Path, frame_spacing_fs: float | None = None, **_) -> Trajectory:
    """Read an extended XYZ file with velocities (momenta and masses)."""
    return read_ase(path, "extxyz", frame_spacing_fs)


def read_traj(path: Path, frame_spacing_fs: float | None = None, **_) -> Trajectory:
    """Read an ASE .traj file with velocities."""
    return read_ase(path, "traj", frame_spacing_fs)


def read_frames(path: Path, kind: str | None = None) -> list:
    """Every frame of a file ASE reads, as ase.Atoms, once the file has passed the checks
    of :func:`gicnet_runtime.io.limits.check_ase_file`; ``kind`` is ASE's format name
    (default: ASE's guess).  Extended XYZ comment lines are parsed with bounded JSON
    (:func:`~gicnet_runtime.io.limits.parse_xyz_comment`)."""
    ase_io = require("ase.io")
    kind = kind or require("ase.io.formats").filetype(str(path))
    limits.check_ase_file(path, kind)
    options = {"properties_parser": limits.parse_xyz_comment} if kind == "extxyz" else {}
    return ase_io.read(str(path), index=":", format=kind, **options)


def read_ase(path: Path, kind: str, frame_spacing_fs: float | None) -> Trajectory:
    """Read an extended XYZ (``kind="extxyz"``) or ASE .traj file with velocities."""
    frames = read_frames(path, kind)
    if not frames:
        raise InputError("file holds no frames")
    first = frames[0]
    for n, atoms in enumerate(frames):
        if "momenta" not in atoms.arrays:
            raise InputError(f"frame {n} has no velocities (momenta)")
        if len(atoms) != len(first) or np.any(atoms.numbers != first.numbers):
            raise InputError(f"frame {n} has different atoms from frame 0")
    positions = np.stack([atoms.get_positions() for atoms in frames])
    velocities = ase_velocities_to_a_per_fs(np.stack([a.get_velocities() for a in frames]))
    return Trajectory(
        time_fs=_frame_times(frames, frame_spacing_fs),
        positions=positions,
        velocities=velocities,
        atomic_numbers=first.numbers,
        masses=first.get_masses(),
        potential_energy=_potential_energies(frames),
        kinetic_energy=_info_series(frames, "kinetic_energy_eV"),
        info=_provenance(first.info),
    )


def _frame_times(frames, frame_spacing_fs: float | None) -> np.ndarray:
    times = _info_series(frames, "time_fs")
    if times is not None:
        return times
    if frame_spacing_fs is None:
        raise InputError("frames carry no time_fs; pass the frame spacing (frame_spacing_fs)")
    if not frame_spacing_fs > 0:
        raise InputError(f"frame spacing must be positive, got {frame_spacing_fs} fs")
    return np.arange(len(frames)) * float(frame_spacing_fs)


def _info_series(frames, key: str) -> np.ndarray | None:
    present = [key in atoms.info for atoms in frames]
    if not any(present):
        return None
    if not all(present):
        raise InputError(f"{key} is present in some frames only")
    return np.array([float(atoms.info[key]) for atoms in frames])


def _potential_energies(frames) -> np.ndarray | None:
    energies = [None if a.calc is None else a.calc.results.get("energy") for a in frames]
    if all(e is None for e in energies):
        return None
    if any(e is None for e in energies):
        raise InputError("potential energy is present in some frames only")
    return np.array(energies, dtype=np.float64)


def _provenance(info: dict) -> dict:
    if "gicnet_info_hex" in info:
        value = jsonsafe.loads(bytes.fromhex(str(info["gicnet_info_hex"])),
                               what="gicnet_info_hex")
    else:  # decoded by ASE, through limits.parse_xyz_comment (extxyz) or check_ulm (.traj)
        value = info.get("gicnet_info", {})
    if not isinstance(value, dict):
        raise InputError("gicnet_info in the first frame is not a JSON object")
    return value
