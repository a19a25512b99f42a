"""Build an IC definition automatically from a molecule's structure.

Bonds come from covalent radii (ASE's table).  Each row refers to bonded, already
placed atoms where the molecule allows it, heavy atoms preferred, and never to a
near-linear reference triple.  The first two rows carry the orientation; their
atoms are chosen so that the body frame they span is well conditioned: far from
the centre of mass, with the bond between them far from pointing at it.
"""

from __future__ import annotations

import numpy as np

from gicnet_runtime.core.icdef import D0, D1, D2, ICDefinition
from gicnet_runtime.core.mechanics import centre_of_mass
from gicnet_runtime.errors import GeometryError

#: Atoms i, j are bonded when closer than this times the sum of covalent radii.
BOND_SCALE = 1.2
#: Reference angles must lie in [MIN, 180 - MIN] in the reference structure, deg.
MIN_BUILD_ANGLE_DEG = 20.0
#: Reference angles within [45, 135] deg are preferred over merely acceptable ones.
GOOD_SIN = np.sin(np.radians(45.0))
#: The first row's atom must be at least this far from the centre of mass, Å.
MIN_FIRST_ATOM_DISTANCE_A = 0.4


def bond_matrix(positions: np.ndarray, atomic_numbers: np.ndarray) -> np.ndarray:
    """(N, N) bool adjacency from covalent radii; fragments joined by their closest pair."""
    from ase.data import covalent_radii

    radii = covalent_radii[np.asarray(atomic_numbers)]
    dist = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    bonded = dist < BOND_SCALE * (radii[:, None] + radii[None])
    np.fill_diagonal(bonded, False)
    _join_fragments(bonded, dist)
    return bonded


def _join_fragments(bonded: np.ndarray, dist: np.ndarray) -> None:
    n = len(bonded)
    while True:
        seen = _component(bonded, 0)
        if len(seen) == n:
            return
        inside = np.zeros(n, bool)
        inside[list(seen)] = True
        sub = np.where(inside[:, None] & ~inside[None], dist, np.inf)
        i, j = np.unravel_index(np.argmin(sub), sub.shape)
        bonded[i, j] = bonded[j, i] = True


def _component(bonded: np.ndarray, start: int) -> set[int]:
    seen, stack = {start}, [start]
    while stack:
        for j in np.flatnonzero(bonded[stack.pop()]):
            if j not in seen:
                seen.add(int(j))
                stack.append(int(j))
    return seen


def _angle_deg(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    u, w = a - b, c - b
    return float(np.degrees(np.arctan2(np.linalg.norm(np.cross(u, w)), np.dot(u, w))))


def _ok(angle_deg: float) -> bool:
    return MIN_BUILD_ANGLE_DEG <= angle_deg <= 180.0 - MIN_BUILD_ANGLE_DEG


def build_icdef(positions: np.ndarray, atomic_numbers: np.ndarray,
                masses: np.ndarray) -> ICDefinition:
    """An IC definition for the molecule at ``positions`` (N, 3) Å.

    Raises GeometryError if the molecule has fewer than 3 atoms or no well-conditioned
    choice exists (e.g. a linear molecule).
    """
    positions = np.asarray(positions, dtype=np.float64)
    z = np.asarray(atomic_numbers)
    n = len(z)
    if n < 3:
        raise GeometryError("GIC needs at least 3 atoms")
    com = centre_of_mass(positions, np.asarray(masses, dtype=np.float64))
    bonded = bond_matrix(positions, z)
    pts = {i: positions[i] for i in range(n)}
    pts[D0] = com
    start = _first_atoms(positions, z, bonded, com)
    if start is None:  # e.g. CH4, H2O: every bond points at the centre of mass
        start = _first_atoms(positions, z, ~np.eye(n, dtype=bool), com)
    if start is None:
        raise GeometryError("no well-conditioned choice of first IC atoms "
                            "(linear or too small molecule?)")
    a0, a1, a2, j2 = start
    rows = [(a0, D0, D1, D2), (a1, a0, D0, D1), (a2, j2, a1 if j2 == a0 else a0, D0)]
    placed = [a0, a1, a2]
    while len(placed) < n:
        atom, ref1 = _next_atom(placed, z, bonded)
        ref2 = _pick(placed, z, bonded[ref1], (atom, ref1), pts)
        ref3 = _pick([*placed, D0], z, bonded[ref2] | bonded[ref1], (ref1, ref2), pts,
                     exclude=atom)
        rows.append((atom, ref1, ref2, ref3))
        placed.append(atom)
    return ICDefinition(tuple(rows))


def _first_atoms(positions, z, bonded, com):
    """(a0, a1, a2, ref1 of a2): the best-conditioned start, heavy atoms preferred;
    None if no pair of atoms linked in ``bonded`` qualifies."""
    best, best_key = None, None
    for a0 in range(len(z)):
        r0 = np.linalg.norm(positions[a0] - com)
        if r0 < MIN_FIRST_ATOM_DISTANCE_A:
            continue
        for a1 in np.flatnonzero(bonded[a0]):
            alpha = _angle_deg(positions[a1], positions[a0], com)
            if not _ok(alpha):
                continue
            third = _third_atom(positions, z, bonded, com, a0, int(a1))
            if third is None:
                continue
            key = ((z[a0] > 1) + (z[a1] > 1), r0 * np.sin(np.radians(alpha)))
            if best_key is None or key > best_key:
                best, best_key = (a0, int(a1), *third), key
    return best


def _third_atom(positions, z, bonded, com, a0, a1):
    """(a2, ref1): an atom bonded to a1 (preferred) or a0 whose reference triples are fine."""
    options = []
    for j, k in ((a1, a0), (a0, a1)):
        for a2 in np.flatnonzero(bonded[j]):
            if a2 in (a0, a1):
                continue
            ang1 = _angle_deg(positions[a2], positions[j], positions[k])
            ang2 = _angle_deg(positions[j], positions[k], com)
            if _ok(ang1) and _ok(ang2):
                options.append(((j == a1, z[a2] > 1, np.sin(np.radians(ang1))), int(a2), j))
    if not options:
        return None
    _, a2, j = max(options)
    return a2, j


def _next_atom(placed, z, bonded):
    """The next unplaced atom bonded to a placed one: heavy atoms first, then by index."""
    candidates = [(z[a] <= 1, a, j) for j in placed for a in np.flatnonzero(bonded[j])
                  if a not in placed]
    _, atom, ref1 = min(candidates)
    return int(atom), int(ref1)


def _pick(candidates, z, preferred, pair, pts, exclude=None):
    """The candidate c making a well-conditioned angle pair[0]-pair[1]-c; ranked bonded
    (``preferred[c]``) first, then a good angle, then heavy, then least linear."""
    best, best_key = None, None
    for c in candidates:
        if c in pair or c == exclude:
            continue
        ang = _angle_deg(pts[pair[0]], pts[pair[1]], pts[c])
        if not _ok(ang):
            continue
        sin = np.sin(np.radians(ang))
        key = (c >= 0 and bool(preferred[c]), sin >= GOOD_SIN, c >= 0 and z[c] > 1, sin)
        if best_key is None or key > best_key:
            best, best_key = c, key
    if best is None:
        raise GeometryError("no non-collinear reference for an IC row (linear fragment?)")
    return int(best)
