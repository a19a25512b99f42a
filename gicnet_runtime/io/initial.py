"""Initial conditions (positions and velocities) from files.

Two layouts are read:

* extended XYZ with velocities, as ASE writes them (a ``momenta`` column, ASE units,
  converted here to Å/fs); every frame is one initial condition.  Any other file ASE
  reads with momenta (e.g. ``.traj``) works the same way.
* MLatom's pair: a plain XYZ file of geometries (Å) and a velocity file of the same
  layout whose atom lines hold ``vx vy vz`` (Å/fs), optionally after the element
  symbol; several molecules back to back are several initial conditions.
* any trajectory file gicnet reads (H5MD ``.h5``, MLatom ``.npz``): every frame is one.

:func:`parse_frames` reads which frames to take (``"0,5,10"``, ``"0:100:10"``, 0-based).

Masses are compared with the model's only when the file states them (an extended XYZ
``masses`` column, H5MD, npz); otherwise the elements decide.

ASE is imported only when a file is read (the ``io`` extra).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from gicnet_runtime.core.description import ModelDescription
from gicnet_runtime.errors import InputError, one_line
from gicnet_runtime.io.ase_formats import read_frames
from gicnet_runtime.io.formats import SUFFIX_FORMATS, read_trajectory, require
from gicnet_runtime.units import ase_velocities_to_a_per_fs

#: File looked for next to the model when no initial conditions are given.
DEFAULT_INIT_NAME = "initial.extxyz"
#: Largest difference between a stated mass and the model's, amu (isotopes differ by ~1).
MASS_TOLERANCE_AMU = 0.01
#: Formats read as trajectories rather than through ASE.
_TRAJECTORY_FORMATS = ("h5md", "npz")


@dataclasses.dataclass(frozen=True)
class InitialConditions:
    """B initial conditions of one molecule.

    Attributes:
        positions: (B, N, 3) float, Å.
        velocities: (B, N, 3) float, Å/fs.
        atomic_numbers: (N,) int.
        masses_amu: (N,) float, amu, when the file states them; else None.
    """

    positions: np.ndarray
    velocities: np.ndarray
    atomic_numbers: np.ndarray
    masses_amu: np.ndarray | None = None

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions, dtype=np.float64)
        vel = np.asarray(self.velocities, dtype=np.float64)
        z = np.asarray(self.atomic_numbers, dtype=np.int64)
        if pos.ndim != 3 or pos.shape[-1] != 3 or pos.shape[0] == 0:
            raise InputError(f"positions must have shape (B, N, 3), got {pos.shape}")
        if vel.shape != pos.shape:
            raise InputError(f"velocities shape {vel.shape} differs from positions {pos.shape}")
        if z.shape != pos.shape[1:2]:
            raise InputError(f"{z.size} atomic numbers for {pos.shape[1]} atoms")
        for name, arr in (("positions", pos), ("velocities", vel)):
            if not np.all(np.isfinite(arr)):
                raise InputError(f"{name} contain NaN or inf")
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "velocities", vel)
        object.__setattr__(self, "atomic_numbers", z)
        if self.masses_amu is not None:
            m = np.asarray(self.masses_amu, dtype=np.float64)
            if m.shape != z.shape or not np.all(np.isfinite(m) & (m > 0)):
                raise InputError(f"masses must be {z.size} positive numbers")
            object.__setattr__(self, "masses_amu", m)

    def __len__(self) -> int:
        return self.positions.shape[0]

    def check_model(self, description: ModelDescription) -> None:
        """Raise InputError unless the atoms are the model's, in the model's order."""
        model_z = np.asarray(description.atomic_numbers)
        if model_z.size != self.atomic_numbers.size:
            raise InputError(f"the initial conditions have {self.atomic_numbers.size} atoms, "
                             f"the model {model_z.size}")
        wrong = np.flatnonzero(model_z != self.atomic_numbers)
        if wrong.size:
            symbols = require("ase.data").chemical_symbols
            i = int(wrong[0])
            raise InputError(f"atom {i + 1} is {symbols[self.atomic_numbers[i]]} in the initial "
                             f"conditions but {symbols[model_z[i]]} in the model (atom order "
                             "must match the model's)")
        if self.masses_amu is not None:
            model_m = np.asarray(description.masses_amu)
            wrong = np.flatnonzero(np.abs(model_m - self.masses_amu) > MASS_TOLERANCE_AMU)
            if wrong.size:
                i = int(wrong[0])
                raise InputError(f"atom {i + 1} has mass {self.masses_amu[i]:g} amu in the "
                                 f"initial conditions but {model_m[i]:g} amu in the model")


def read_initial_conditions(path: str | os.PathLike,
                            velocities_path: str | os.PathLike | None = None) -> InitialConditions:
    """Initial conditions from an extended XYZ file with velocities, or MLatom's pair.

    Args:
        path: extended XYZ (``momenta`` column) or, with ``velocities_path``, plain XYZ, Å.
        velocities_path: MLatom velocity file (Å/fs), one block per geometry in ``path``.
    """
    path = Path(path)
    for p in (path, velocities_path):
        if p is not None and not Path(p).is_file():
            raise InputError(f"initial-conditions file not found: {p}")
    kind = SUFFIX_FORMATS.get(path.suffix.lower())
    if velocities_path is None and kind in _TRAJECTORY_FORMATS:
        traj = read_trajectory(path)
        return InitialConditions(traj.positions, traj.velocities, traj.atomic_numbers,
                                 traj.masses)
    frames = _read_frames(path)
    z = frames[0].numbers
    for n, atoms in enumerate(frames):
        if len(atoms) != len(z) or np.any(atoms.numbers != z):
            raise InputError(f"{path}: frame {n} has different atoms from frame 0")
    positions = np.stack([a.get_positions() for a in frames])
    if velocities_path is not None:
        velocities = read_velocity_blocks(velocities_path, len(z))
        if velocities.shape[0] != positions.shape[0]:
            raise InputError(f"{velocities_path} holds {velocities.shape[0]} velocity blocks "
                             f"but {path} {positions.shape[0]} geometries")
    else:
        missing = [n for n, a in enumerate(frames) if "momenta" not in a.arrays]
        if missing:
            raise InputError(f"{path}: frame {missing[0]} has no velocities (an extended XYZ "
                             "'momenta' column); for MLatom's files give the velocity file too")
        velocities = ase_velocities_to_a_per_fs(np.stack([a.get_velocities() for a in frames]))
    masses = frames[0].get_masses() if "masses" in frames[0].arrays else None
    return InitialConditions(positions, velocities, z, masses)


def _read_frames(path: Path) -> list:
    """The frames of a file ASE reads (validated first: :func:`read_frames`)."""
    try:
        frames = read_frames(path)
    except InputError as err:
        raise InputError(f"{path}: {one_line(err)}") from None
    except Exception as err:  # noqa: BLE001 (ASE raises many unrelated types on bad files)
        raise InputError(f"cannot read {path}: {one_line(err)}") from None
    if not frames:
        raise InputError(f"{path} holds no geometries")
    return frames


def _velocity_row(line: str, path, number: int) -> list[float]:
    """``vx vy vz`` or ``symbol vx vy vz``, Å/fs; any other column count is refused (4
    numbers would leave it to guess which three are the velocity)."""
    parts = line.split()
    if len(parts) == 3 or (len(parts) == 4 and not _is_number(parts[0])):
        return [float(x) for x in parts[-3:]]
    raise InputError(f"{path}: line {number} has {len(parts)} columns; a velocity line is "
                     "'vx vy vz' or 'symbol vx vy vz'")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_velocity_blocks(path: str | os.PathLike, n_atoms: int) -> np.ndarray:
    """MLatom velocity file: blocks of ``N``, a comment line, N lines ``[symbol] vx vy vz``.

    Returns (B, N, 3) Å/fs.
    """
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read velocity file {path}: {one_line(err)}"
                         ) from None
    blocks, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        try:
            count = int(lines[i].split()[0])
            rows = [_velocity_row(line, path, i + 3 + k)
                    for k, line in enumerate(lines[i + 2:i + 2 + count])]
            block = np.array(rows, dtype=np.float64)
        except InputError:
            raise
        except (ValueError, IndexError):
            raise InputError(f"{path}: malformed velocity block at line {i + 1}") from None
        if count != n_atoms or block.shape != (n_atoms, 3):
            raise InputError(f"{path}: velocity block at line {i + 1} has {block.shape[0]} of "
                             f"{count} atoms, expected {n_atoms}")
        blocks.append(block)
        i += 2 + count
    if not blocks:
        raise InputError(f"{path} holds no velocities")
    return np.stack(blocks)


def initial_conditions_for(description: ModelDescription, init: str | os.PathLike | None,
                           velocities_path: str | os.PathLike | None,
                           model_dir: str | os.PathLike) -> InitialConditions:
    """Read ``init`` (default: ``DEFAULT_INIT_NAME`` in ``model_dir``) and check that it fits
    the model."""
    if init is None:
        init = Path(model_dir) / DEFAULT_INIT_NAME
        if not init.is_file():
            raise InputError(f"no initial conditions given and {init} does not exist; "
                             "pass --init FILE")
    conditions = read_initial_conditions(init, velocities_path)
    conditions.check_model(description)
    return conditions


def parse_frames(spec: str, n_frames: int) -> np.ndarray:
    """0-based frame indices from ``"I"``, ``"I,J,..."`` or ``"START:STOP[:STEP]"`` (STOP
    included, like time ranges; START and STOP may be left out, negative indices count from
    the end), items combined with commas: ``"0,5,10"``, ``"0:100:10"``, ``"::1000"``.

    Returns (F,) int indices into ``n_frames`` frames, increasing, without repeats.
    """
    picked: list[np.ndarray] = []
    for item in spec.split(","):
        if item.strip():
            picked.append(_frame_item(item.strip(), spec, n_frames))
    if not picked:
        raise InputError("no frames given")
    return np.unique(np.concatenate(picked))


def _frame_item(item: str, spec: str, n_frames: int) -> np.ndarray:
    parts = item.split(":")
    try:
        if len(parts) > 3:
            raise ValueError
        values = [int(p) if p.strip() else None for p in parts]
    except ValueError:
        raise InputError(f"cannot read frames {spec!r}: give I, I,J,... or START:STOP:STEP "
                         "(0-based, STOP included)") from None
    if len(values) == 1:
        return np.array([_frame_index(values[0], n_frames)])
    start, stop, step = (values + [None])[:3]
    if step is not None and step < 1:
        raise InputError(f"frame step must be a positive integer, got {step}")
    first = 0 if start is None else _frame_index(start, n_frames)
    last = n_frames - 1 if stop is None else _frame_index(stop, n_frames)
    if last < first:
        raise InputError(f"frame range {item!r} is empty")
    return np.arange(first, last + 1, step or 1)


def _frame_index(index: int, n_frames: int) -> int:
    if not -n_frames <= index < n_frames:
        raise InputError(f"frame {index} is outside the {n_frames} frames "
                         f"(0 to {n_frames - 1})")
    return index % n_frames
