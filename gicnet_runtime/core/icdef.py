"""Generalized internal coordinates (GIC): the definition and its numpy checks.

An IC definition has one row per atom, ``(atom, ref1, ref2, ref3)``, in placement
order.  The row gives the atom's distance to ``ref1`` (Å), the angle
atom-ref1-ref2 (rad) and the dihedral atom-ref1-ref2-ref3 (rad).  Every reference
is an atom placed by an earlier row or one of three fixed dummy points
D0, D1, D2 (indices -1, -2, -3).  The dummy points stand in for the references the
first atoms lack, so that positions relative to the centre of mass, orientation
included, are recovered exactly from the 3N coordinates.

The dummy points live in the *initial body frame* (see :func:`body_frame_rotation`):
origin at the centre of mass, x axis towards the first row's atom, the second
row's atom in the xy plane.  There D0 = (0, 0, 0), D1 = (0, 0, 1) Å and
D2 = (1, 0, 1) Å, which puts the first row's angle at exactly pi/2 and its dihedral
at 0 at t = 0: as far from the polar singularity and the ±pi cut as possible.

This module is numpy-only (the runtime uses it); the batched torch transforms
used inside the model graph are in ``gicnet_train.geometry``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gicnet_runtime.core.mechanics import centre_of_mass
from gicnet_runtime.errors import GeometryError, InputError

#: Dummy points D0, D1, D2 in the initial body frame, Å.
DUMMY_POINTS_A = ((0.0, 0.0, 0.0), (0.0, 0.0, 1.0), (1.0, 0.0, 1.0))
#: Row indices of the dummy points (0-based rows; -1 is D0).
D0, D1, D2 = -1, -2, -3
#: A reference angle closer than this to 0 or pi makes a row ill-defined, deg.
MIN_REFERENCE_ANGLE_DEG = 2.0
#: Two atoms closer than this are "on top of each other", Å.
MIN_ATOM_DISTANCE_A = 0.3


@dataclasses.dataclass(frozen=True)
class ICDefinition:
    """Rows (atom, ref1, ref2, ref3), 0-based; -1, -2, -3 are the dummy points D0, D1, D2."""

    rows: tuple[tuple[int, int, int, int], ...]

    def __post_init__(self) -> None:
        rows = tuple(tuple(int(i) for i in row) for row in self.rows)
        object.__setattr__(self, "rows", rows)
        _validate_rows(rows)

    @property
    def n_atoms(self) -> int:
        return len(self.rows)

    def as_array(self) -> np.ndarray:
        """(N, 4) int64 rows."""
        return np.asarray(self.rows, dtype=np.int64).reshape(-1, 4)

    def to_ic_text(self) -> str:
        """The MLatom GICnet ``.ic`` text: 1-based atoms, 0/-1/-2 for D0/D1/D2."""
        lines = [" ".join(str(_to_mlatom(i)) for i in row) for row in self.rows]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_ic_text(cls, text: str) -> ICDefinition:
        """Parse the MLatom ``.ic`` format: one row 'atom ref1 ref2 ref3' per line."""
        rows = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.replace(",", " ").split()
            try:
                values = [int(f) for f in fields]
            except ValueError:
                raise InputError(f".ic line {lineno}: expected 4 integers, got {line!r}") from None
            if len(values) != 4:
                raise InputError(f".ic line {lineno}: expected 4 integers, got {len(values)}")
            rows.append(tuple(_from_mlatom(v) for v in values))
        if not rows:
            raise InputError(".ic file defines no rows")
        return cls(tuple(rows))

    @classmethod
    def read(cls, path: str | Path) -> ICDefinition:
        """Read an ``.ic`` file (MLatom GICnet format)."""
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"cannot read IC file {path}: {err}") from None
        return cls.from_ic_text(text)


def _to_mlatom(i: int) -> int:
    """0-based row index -> MLatom's: atoms 0.. -> 1..; dummies -1, -2, -3 -> 0, -1, -2."""
    return i + 1


def _from_mlatom(i: int) -> int:
    return i - 1


def _validate_rows(rows: tuple[tuple[int, ...], ...]) -> None:
    n = len(rows)
    if n == 0:
        raise InputError("IC definition has no rows")
    if any(len(row) != 4 for row in rows):
        raise InputError("every IC row needs 4 entries (atom, ref1, ref2, ref3)")
    atoms = [row[0] for row in rows]
    if sorted(atoms) != list(range(n)):
        missing = sorted(set(range(n)) - set(atoms))
        dup = sorted({a for a in atoms if atoms.count(a) > 1})
        raise InputError(f"IC rows must define every atom exactly once "
                         f"(missing {[m + 1 for m in missing]}, repeated {[d + 1 for d in dup]}, "
                         f"1-based)")
    placed = {D0, D1, D2}
    for k, (atom, *refs) in enumerate(rows):
        if len(set(refs)) != 3 or atom in refs:
            raise InputError(f"IC row {k + 1} repeats an atom: {_row_text(rows[k])}")
        unplaced = [r for r in refs if r not in placed]
        if unplaced:
            raise InputError(f"IC row {k + 1} refers to atom(s) not placed by an earlier row: "
                             f"{_row_text(rows[k])}")
        placed.add(atom)


def _row_text(row) -> str:
    return "(" + " ".join(str(_to_mlatom(i)) for i in row) + ") [1-based]"


def body_frame_rotation(positions: np.ndarray, masses: np.ndarray,
                        icdef: ICDefinition) -> np.ndarray:
    """Rotation R (..., 3, 3) into the initial body frame: y = R @ (x - com).

    Rows of R are e1 = unit(x_a0 - com), e3 = unit(e1 x (x_a1 - x_a0)), e2 = e3 x e1,
    with a0, a1 the atoms of the first two IC rows.
    """
    rel = positions - centre_of_mass(positions, masses)[..., None, :]
    a0, a1 = icdef.rows[0][0], icdef.rows[1][0]
    e1 = _unit(rel[..., a0, :])
    e3 = _unit(np.cross(e1, rel[..., a1, :] - rel[..., a0, :]))
    e2 = np.cross(e3, e1)
    return np.stack([e1, e2, e3], axis=-2)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def angle_rad(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Angle a-b-c in [0, pi], rad, of points (..., 3), via atan2(|u x w|, u . w)."""
    u, w = a - b, c - b
    return np.arctan2(np.linalg.norm(np.cross(u, w), axis=-1), np.sum(u * w, axis=-1))


def with_dummy_points(body: np.ndarray) -> np.ndarray:
    """Atoms (..., N, 3) in the body frame, then D2, D1, D0: rows' -1, -2, -3 index D0, D1, D2
    by ordinary negative indexing."""
    dummies = np.broadcast_to(np.asarray(DUMMY_POINTS_A)[::-1], body.shape[:-2] + (3, 3))
    return np.concatenate([body, dummies], axis=-2)


def reference_angles_deg(positions: np.ndarray, masses: np.ndarray,
                         icdef: ICDefinition) -> np.ndarray:
    """(..., N, 2) deg: per row, angle atom-ref1-ref2 and angle ref1-ref2-ref3.

    Computed in the initial body frame of ``positions`` (..., N, 3) Å, where the
    dummy points are fixed.  Values near 0 or 180 make the row's dihedral undefined.
    """
    rot = body_frame_rotation(positions, masses, icdef)
    rel = positions - centre_of_mass(positions, masses)[..., None, :]
    points = with_dummy_points(np.einsum("...ij,...nj->...ni", rot, rel))
    rows = icdef.as_array()
    p = [points[..., rows[:, j], :] for j in range(4)]
    return np.degrees(np.stack([angle_rad(p[0], p[1], p[2]), angle_rad(p[1], p[2], p[3])],
                               axis=-1))


def check_geometry(positions: np.ndarray, masses: np.ndarray, icdef: ICDefinition) -> None:
    """Raise GeometryError if any structure in ``positions`` (..., N, 3) Å cannot be
    represented: atoms on top of each other or a near-collinear reference triple."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.shape[-2:] != (icdef.n_atoms, 3):
        raise InputError(f"positions must have shape (..., {icdef.n_atoms}, 3), "
                         f"got {positions.shape}")
    if not np.all(np.isfinite(positions)):
        raise InputError("positions contain NaN or inf")
    flat = positions.reshape(-1, icdef.n_atoms, 3)
    dist = np.linalg.norm(flat[:, :, None, :] - flat[:, None, :, :], axis=-1)
    dist[:, np.arange(icdef.n_atoms), np.arange(icdef.n_atoms)] = np.inf
    if np.any(dist < MIN_ATOM_DISTANCE_A):
        s, i, j = np.argwhere(dist < MIN_ATOM_DISTANCE_A)[0]
        raise GeometryError(f"structure {s}: atoms {i + 1} and {j + 1} are {dist[s, i, j]:.3f} Å "
                            f"apart (on top of each other)")
    with np.errstate(invalid="ignore", divide="ignore"):
        ang = reference_angles_deg(flat, np.asarray(masses, dtype=np.float64), icdef)
    bad = ~((ang > MIN_REFERENCE_ANGLE_DEG) & (ang < 180.0 - MIN_REFERENCE_ANGLE_DEG))
    if np.any(bad):
        s, k, which = np.argwhere(bad)[0]
        row = icdef.rows[k]
        triple = row[0:3] if which == 0 else row[1:4]
        names = ["D0" if i == D0 else "D1" if i == D1 else "D2" if i == D2 else str(i + 1)
                 for i in triple]
        raise GeometryError(f"structure {s}: reference triple {'-'.join(names)} of IC row {k + 1} "
                            f"is collinear (angle {ang[s, k, which]:.1f} deg)")
