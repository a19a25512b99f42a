"""Internal coordinates in numpy: bonds, angles, dihedrals and the GIC transforms.

The runtime's (torch-free) counterpart of ``gicnet_train.geometry``, for analysis:
pure, batched functions over (..., N, 3) positions in Å.  Angles and dihedrals are in
rad; dihedrals use atan2 (IUPAC sign), never arccos.

The GIC transforms here give positions exactly and rates (time derivatives) by a
central finite difference along the velocity in float64 (step ``RATE_STEP``, error
~1e-10 of the rate), which is all the analysis needs; the exact hand-written tangents
used inside the model graph stay in ``gicnet_train.geometry``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gicnet_runtime.core.icdef import (
    DUMMY_POINTS_A,
    ICDefinition,
    angle_rad,
    body_frame_rotation,
    centre_of_mass,
    with_dummy_points,
)
from gicnet_runtime.errors import InputError

#: Finite-difference step along the velocity for rates, fs.
RATE_STEP = 1e-4
#: Columns of a GIC row: distance (Å), angle (rad), dihedral (rad).
DISTANCE, ANGLE, DIHEDRAL = 0, 1, 2
_KINDS = {"bond": 2, "angle": 3, "dihedral": 4}


def bond_lengths(positions: np.ndarray, i, j) -> np.ndarray:
    """|x_i - x_j|, Å.  positions: (..., N, 3); i, j: int or (P,) indices -> (...) or (..., P)."""
    return np.linalg.norm(positions[..., i, :] - positions[..., j, :], axis=-1)


def angles(positions: np.ndarray, i, j, k) -> np.ndarray:
    """Angle i-j-k in [0, pi], rad."""
    return angle_rad(positions[..., i, :], positions[..., j, :], positions[..., k, :])


def dihedrals(positions: np.ndarray, i, j, k, m) -> np.ndarray:
    """Dihedral i-j-k-m in (-pi, pi], rad (IUPAC sign), via atan2."""
    b1 = positions[..., j, :] - positions[..., i, :]
    b2 = positions[..., k, :] - positions[..., j, :]
    b3 = positions[..., m, :] - positions[..., k, :]
    n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
    y = np.linalg.norm(b2, axis=-1) * np.sum(b1 * n2, axis=-1)
    return np.arctan2(y, np.sum(n1 * n2, axis=-1))


def wrap_angle(x: np.ndarray) -> np.ndarray:
    """x mapped to (-pi, pi], rad."""
    return np.arctan2(np.sin(x), np.cos(x))


@dataclasses.dataclass(frozen=True)
class Coordinate:
    """One internal coordinate of real atoms.

    Attributes:
        kind: "bond" (Å), "angle" or "dihedral" (rad).
        atoms: 0-based atom indices (2, 3 or 4 of them).
    """

    kind: str
    atoms: tuple[int, ...]

    @classmethod
    def parse(cls, text: str, n_atoms: int) -> Coordinate:
        """``"dihedral 12 24 23 10"`` (1-based atoms, as chemists count) -> Coordinate."""
        fields = text.replace(",", " ").split()
        if not fields or fields[0] not in _KINDS:
            raise InputError(f"coordinate {text!r} must start with one of {', '.join(_KINDS)}")
        try:
            atoms = tuple(int(f) - 1 for f in fields[1:])
        except ValueError:
            raise InputError(f"coordinate {text!r}: atoms must be integers (1-based)") from None
        if len(atoms) != _KINDS[fields[0]]:
            raise InputError(f"a {fields[0]} needs {_KINDS[fields[0]]} atoms, got {len(atoms)}")
        if len(set(atoms)) != len(atoms) or min(atoms) < 0 or max(atoms) >= n_atoms:
            raise InputError(f"coordinate {text!r}: atoms must be distinct and within "
                             f"1..{n_atoms}")
        return cls(fields[0], atoms)

    @property
    def unit(self) -> str:
        return "Å" if self.kind == "bond" else "rad"

    def label(self) -> str:
        return f"{self.kind} {' '.join(str(a + 1) for a in self.atoms)}"

    def value(self, positions: np.ndarray) -> np.ndarray:
        """The coordinate of positions (..., N, 3) Å -> (...) Å or rad."""
        fn = {"bond": bond_lengths, "angle": angles, "dihedral": dihedrals}[self.kind]
        return fn(positions, *self.atoms)


def body_positions_to_internal(body: np.ndarray, icdef: ICDefinition) -> np.ndarray:
    """GIC q (..., N, 3): per row (r Å, theta rad, phi rad) of positions (..., N, 3) Å that
    are already relative to the centre of mass, in the dummy-point frame."""
    pts = with_dummy_points(body)
    rows = icdef.as_array()
    a, b, c, d = (rows[:, j] % (icdef.n_atoms + 3) for j in range(4))
    return np.stack([bond_lengths(pts, a, b), angles(pts, a, b, c),
                     dihedrals(pts, a, b, c, d)], axis=-1)


def to_internal(positions: np.ndarray, velocities: np.ndarray, masses: np.ndarray,
                icdef: ICDefinition) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lab positions (..., N, 3) Å and velocities Å/fs -> q, q_dot (..., N, 3) and the
    rotation (..., 3, 3) into each structure's own initial body frame.

    The frame is fixed at t = 0 (as in ``gicnet_train.geometry.to_internal``), so q_dot
    is the rate of q with that frame held still.
    """
    masses = np.asarray(masses, dtype=np.float64)
    rotation = body_frame_rotation(positions, masses, icdef)

    def q_of(x):
        rel = x - centre_of_mass(x, masses)[..., None, :]
        return body_positions_to_internal(np.einsum("...ij,...nj->...ni", rotation, rel), icdef)

    q = q_of(positions)
    ahead = q_of(positions + RATE_STEP * velocities)
    behind = q_of(positions - RATE_STEP * velocities)
    change = ahead - behind
    change[..., DIHEDRAL] = wrap_angle(change[..., DIHEDRAL])
    q_dot = change / (2 * RATE_STEP)
    return q, q_dot, rotation


def internal_to_body_positions(q: np.ndarray, icdef: ICDefinition) -> np.ndarray:
    """Inverse of :func:`body_positions_to_internal`: positions (..., N, 3) Å in the
    dummy-point frame, atoms placed row by row (natural extension reference frame)."""
    shape = q.shape[:-2] + (3,)
    points = {-1 - k: np.broadcast_to(np.asarray(p, dtype=np.float64), shape)
              for k, p in enumerate(DUMMY_POINTS_A)}
    for k, (atom, r1, r2, r3) in enumerate(icdef.rows):
        r, theta, phi = q[..., k, DISTANCE], q[..., k, ANGLE], q[..., k, DIHEDRAL]
        bc = _unit(points[r1] - points[r2])
        n = _unit(np.cross(points[r2] - points[r3], bc))
        m = np.cross(n, bc)
        along, perp = -r * np.cos(theta), r * np.sin(theta)
        points[atom] = (points[r1] + along[..., None] * bc + (perp * np.cos(phi))[..., None] * m
                        + (perp * np.sin(phi))[..., None] * n)
    return np.stack([points[i] for i in range(icdef.n_atoms)], axis=-2)


def to_body_cartesian(q: np.ndarray, q_dot: np.ndarray,
                      icdef: ICDefinition) -> tuple[np.ndarray, np.ndarray]:
    """q, q_dot (..., N, 3) -> positions (..., N, 3) Å and velocities Å/fs in the
    dummy-point frame (velocities by a central difference along q_dot)."""
    pos = internal_to_body_positions(q, icdef)
    vel = (internal_to_body_positions(q + RATE_STEP * q_dot, icdef)
           - internal_to_body_positions(q - RATE_STEP * q_dot, icdef)) / (2 * RATE_STEP)
    return pos, vel


def bond_rows(icdef: ICDefinition) -> np.ndarray:
    """(P,) indices of the rows whose first reference is a real atom: their distance is a
    bond between real atoms."""
    return np.flatnonzero(icdef.as_array()[:, 1] >= 0)


def row_bonds(icdef: ICDefinition) -> np.ndarray:
    """(P, 2) atom pairs (atom, ref1) of the :func:`bond_rows`."""
    return icdef.as_array()[bond_rows(icdef), :2]


def row_angles(icdef: ICDefinition) -> np.ndarray:
    """(Q, 3) atom triples (atom, ref1, ref2), vertex ref1, of the rows whose first two
    references are real atoms."""
    rows = icdef.as_array()
    return rows[(rows[:, 1:3] >= 0).all(1)][:, :3]


def row_dihedrals(icdef: ICDefinition) -> np.ndarray:
    """(R, 4) atom quadruples of the rows whose three references are real atoms."""
    rows = icdef.as_array()
    return rows[(rows[:, 1:] >= 0).all(1)]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)
