"""Generalized internal coordinates in torch: batched, dtype-agnostic, ONNX-exportable.

Cartesian (positions, velocities) <-> (q, q_dot), where q (..., N, 3) holds, per IC
row in row order, the distance r (Å), angle theta (rad) and dihedral phi (rad) and
q_dot their exact time derivatives (Å/fs, rad/fs).  Velocities are carried as
forward-mode tangents written out by hand (value, tangent pairs), so the whole
transform is plain tensor algebra: no autograd, no control flow on tensor values.
The only Python loop is over IC rows, a static structure.

Positions here are relative to the centre of mass and expressed in the frame
where the dummy points (``gicnet_runtime.core.icdef.DUMMY_POINTS_A``) are fixed; see
:func:`to_body_frame` for the frame the model uses.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from gicnet_runtime.core.icdef import DUMMY_POINTS_A, ICDefinition
from gicnet_runtime.errors import InputError

#: Columns of q: distance (Å), angle (rad), dihedral (rad).
DISTANCE, ANGLE, DIHEDRAL = 0, 1, 2


class Dual(NamedTuple):
    """A value and its time derivative (forward-mode tangent).  ``d`` None is a tangent
    known to be zero (a fixed point: the dummy references), whose terms :func:`d_sub`,
    :func:`d_cross`, :func:`d_unit`, :func:`d_scale` and :func:`d_add` leave out (the
    others take full pairs)."""

    v: torch.Tensor
    d: torch.Tensor | None


# --- elementary operations on (value, tangent) pairs -------------------------

#: The components cycled, (y, z, x): a x b = a[NEXT] b[NEXT][NEXT] - a[NEXT][NEXT] b[NEXT].
_NEXT = (1, 2, 0)


def _cross(a: torch.Tensor, b: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Cross product over ``axis`` (the last), broadcast.  In torch, one ``linalg.cross`` (one
    operation forward, two backward: the training step is bound by the count of small
    operations, benchmarks/train_step.py); in an ONNX export, :func:`cross_gathers`."""
    if torch.onnx.is_in_onnx_export():
        return cross_gathers(a, b, axis)
    return torch.linalg.cross(a, b, dim=axis)  # broadcasts, forward and backward


def cross_gathers(a: torch.Tensor, b: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Cross product over ``axis`` (the last), broadcast, as three gathers: ONNX has no cross
    operator.  With a' = a[NEXT] (components cycled), w = a b' - a' b holds at component i
    a_i b_(i+1) - a_(i+1) b_i, so w[NEXT] is a x b: the products and the subtraction of
    the textbook a[NEXT] b[AFTER] - a[AFTER] b[NEXT] in the same order (the same float
    numbers), in 6 graph nodes instead of 7 (a split and a stack per component take 21)."""
    nxt = _next_index(a)
    w = a * b.index_select(axis, nxt) - a.index_select(axis, nxt) * b
    return w.index_select(axis, nxt)


def _next_index(like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(_NEXT, device=like.device)


def _dot(a: torch.Tensor, b: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Dot product over ``axis`` (the components), kept as a length-1 axis (scalar fields
    are (..., 1))."""
    return (a * b).sum(axis, keepdim=True)


def _tangent(*terms: torch.Tensor | None) -> torch.Tensor | None:
    """The sum of the terms that are not None (left to right), None if all are."""
    present = [t for t in terms if t is not None]
    return sum(present[1:], present[0]) if present else None


def d_sub(a: Dual, b: Dual) -> Dual:
    d = (a.d if b.d is None else -b.d if a.d is None else a.d - b.d)
    return Dual(a.v - b.v, d)


def d_dot(a: Dual, b: Dual) -> Dual:
    return Dual(_dot(a.v, b.v), _dot(a.d, b.v) + _dot(a.v, b.d))


def d_cross(a: Dual, b: Dual, axis: int = -1) -> Dual:
    if torch.onnx.is_in_onnx_export():
        return d_cross_gathers(a, b, axis)
    return Dual(_cross(a.v, b.v, axis),
                _tangent(None if a.d is None else _cross(a.d, b.v, axis),
                         None if b.d is None else _cross(a.v, b.d, axis)))


def d_cross_gathers(a: Dual, b: Dual, axis: int = -1) -> Dual:
    """:func:`d_cross` as exported: :func:`cross_gathers` with each operand's cycled
    components gathered once for the value and both tangent terms, and the tangent's two
    terms summed before the last gather: 6 gathers and 16 nodes where three cross
    products take 12 and 22, with the same float numbers."""
    nxt = _next_index(a.v)
    av, bv = a.v.index_select(axis, nxt), b.v.index_select(axis, nxt)
    value = a.v * bv - av * b.v
    tangent = _tangent(
        None if a.d is None else a.d * bv - a.d.index_select(axis, nxt) * b.v,
        None if b.d is None else a.v * b.d.index_select(axis, nxt) - av * b.d)
    return Dual(value.index_select(axis, nxt),
                None if tangent is None else tangent.index_select(axis, nxt))


def d_norm(a: Dual) -> Dual:
    n = torch.linalg.vector_norm(a.v, dim=-1, keepdim=True)
    return Dual(n, _dot(a.v, a.d) / n)


def d_unit(a: Dual, axis: int = -1) -> Dual:
    n = torch.linalg.vector_norm(a.v, dim=axis, keepdim=True)
    u = a.v / n
    return Dual(u, None if a.d is None else (a.d - u * _dot(u, a.d, axis)) / n)


def d_atan2(y: Dual, x: Dual) -> Dual:
    return Dual(atan2(y.v, x.v), (x.v * y.d - y.v * x.d) / (x.v * x.v + y.v * y.v))


def atan2(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """torch.atan2 that survives ONNX export at x = -0.0: the exporter writes atan2 as
    atan(y / x) corrected where x < 0, which gives -pi/2 for y > 0 at x = -0.0 (not
    < 0), where the answer is +pi/2.  An exact -0.0 turns up for a start given in its own
    body frame (the second atom in the xy plane); it is made +0.0 first."""
    return torch.atan2(y, torch.where(x == 0, torch.abs(x), x))


def d_scale(s: Dual, a: Dual) -> Dual:
    """Scalar field s (..., 1) times vector a (..., 3)."""
    return Dual(s.v * a.v, _tangent(s.d * a.v, None if a.d is None else s.v * a.d))


def d_add(*terms: Dual) -> Dual:
    return Dual(sum(t.v for t in terms), _tangent(*(t.d for t in terms)))


# --- distances, angles, dihedrals ------------------------------------------

def distance(a: Dual, b: Dual) -> Dual:
    """|a - b|, Å, with its rate: (..., 1)."""
    return d_norm(d_sub(a, b))


def angle(a: Dual, b: Dual, c: Dual) -> Dual:
    """Angle a-b-c in [0, pi], rad, via atan2(|u x w|, u . w): (..., 1)."""
    u, w = d_sub(a, b), d_sub(c, b)
    return d_atan2(d_norm(d_cross(u, w)), d_dot(u, w))


def dihedral(a: Dual, b: Dual, c: Dual, d: Dual) -> Dual:
    """Dihedral a-b-c-d in (-pi, pi], rad, via atan2 (IUPAC sign convention): (..., 1)."""
    b1, b2, b3 = d_sub(b, a), d_sub(c, b), d_sub(d, c)
    n1, n2 = d_cross(b1, b2), d_cross(b2, b3)
    y = d_dot(d_scale(d_norm(b2), b1), n2)
    return d_atan2(y, d_dot(n1, n2))


def wrap_angle(x: torch.Tensor) -> torch.Tensor:
    """x mapped to (-pi, pi], rad."""
    return atan2(torch.sin(x), torch.cos(x))


def unwrap_dihedral(phi: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The representative of phi (rad) closest to ``reference`` (rad): continuous across ±pi."""
    return reference + wrap_angle(phi - reference)


# --- the transforms ----------------------------------------------------------

def _dummy_points(like: torch.Tensor) -> torch.Tensor:
    """(3, 3) dummy points D0, D1, D2 in the dtype and device of ``like``, Å."""
    return torch.tensor(DUMMY_POINTS_A, dtype=like.dtype, device=like.device)


def cartesian_to_internal(positions: torch.Tensor, velocities: torch.Tensor,
                          icdef: ICDefinition) -> tuple[torch.Tensor, torch.Tensor]:
    """Internal coordinates and their exact rates.

    Args:
        positions: (..., N, 3) Å, relative to the centre of mass, in the dummy-point frame.
        velocities: (..., N, 3) Å/fs, centre-of-mass velocity removed.
    Returns:
        q: (..., N, 3) per IC row (r Å, theta rad, phi rad); phi in (-pi, pi].
        q_dot: (..., N, 3) per IC row (Å/fs, rad/fs, rad/fs).
    """
    _check_shape(positions, velocities, icdef)
    n = icdef.n_atoms
    # Atoms, then the dummies reversed (D2, D1, D0): row index -1 (D0) becomes N + 2.
    dummies = _dummy_points(positions).flip(0).expand(positions.shape[:-2] + (3, 3))
    pts = torch.cat([positions, dummies], dim=-2)
    vel = torch.cat([velocities, torch.zeros_like(dummies)], dim=-2)
    idx = [torch.tensor([row[j] % (n + 3) for row in icdef.rows], device=positions.device)
           for j in range(4)]
    a, b, c, d = (Dual(pts.index_select(-2, i), vel.index_select(-2, i)) for i in idx)
    r, theta, phi = distance(a, b), angle(a, b, c), dihedral(a, b, c, d)
    q = torch.cat([r.v, theta.v, phi.v], dim=-1)
    q_dot = torch.cat([r.d, theta.d, phi.d], dim=-1)
    return q, q_dot


def place_atom(ref1: Dual, ref2: Dual, ref3: Dual, r: Dual, theta: Dual, phi: Dual,
               axis: int = -1) -> Dual:
    """Position (and velocity) of an atom at distance r from ref1, angle atom-ref1-ref2
    theta and dihedral atom-ref1-ref2-ref3 phi (natural extension reference frame);
    ``axis``: the components' axis."""
    bc = d_unit(d_sub(ref1, ref2), axis)
    n = d_unit(d_cross(d_sub(ref2, ref3), bc, axis), axis)
    m = d_cross(n, bc, axis)
    ct, st, cp, sp = torch.cos(theta.v), torch.sin(theta.v), torch.cos(phi.v), torch.sin(phi.v)
    cos_t, sin_t = Dual(ct, -st * theta.d), Dual(st, ct * theta.d)
    cos_p, sin_p = Dual(cp, -sp * phi.d), Dual(sp, cp * phi.d)
    perp = _mul(r, sin_t)
    return d_add(d_sub(ref1, d_scale(_mul(r, cos_t), bc)), d_scale(_mul(perp, cos_p), m),
                 d_scale(_mul(perp, sin_p), n))


def _mul(a: Dual, b: Dual) -> Dual:
    return Dual(a.v * b.v, a.d * b.v + a.v * b.d)


class Axes(NamedTuple):
    """Where a tensor of points keeps its atoms and their x, y, z components."""

    atom: int
    comp: int


#: (..., N, 3): the layout of every function's arguments and results.
ATOMS_LAST = Axes(-2, -1)
#: (N, 3, ...): atoms and components first, frames last.  The exported graph converts in
#: this layout (:func:`gicnet_train.model.lab_frame_outputs_frames_last`): onnxruntime broadcasts a
#: scalar field over the components and gathers components in long contiguous runs, where
#: with 3 components innermost it steps 3 floats at a time.
FRAMES_LAST = Axes(0, 1)


def internal_to_cartesian(q: torch.Tensor, q_dot: torch.Tensor, icdef: ICDefinition,
                          axes: Axes = ATOMS_LAST) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`cartesian_to_internal`: positions (..., N, 3) Å and exact
    velocities (..., N, 3) Å/fs, in atom order, in the dummy-point frame (with
    ``axes=FRAMES_LAST``, q, q_dot and the results are (N, 3, ...)).

    Atoms are placed level by level of the IC tree (:func:`placement_levels`): every atom
    whose reference points are already placed goes in one vectorised step, so the exported
    graph grows with the depth of the tree, not with the number of atoms.
    """
    n = icdef.n_atoms
    if (q.shape[axes.atom], q.shape[axes.comp]) != (n, 3) or q_dot.shape != q.shape:
        expected = f"(..., {n}, 3)" if axes == ATOMS_LAST else f"({n}, 3, ...)"
        raise InputError(f"q and q_dot must have shape {expected}, got {tuple(q.shape)}, "
                         f"{tuple(q_dot.shape)}")
    _check_dtypes(q, q_dot)

    def points(rows: torch.Tensor) -> torch.Tensor:  # (k, 3) constants laid out as q
        shape = [1] * q.dim()
        shape[axes.atom], shape[axes.comp] = rows.shape
        return rows.reshape(shape)

    # Placed points in slot order: D0, D1, D2, then the atoms as their levels place them.
    # Broadcast by arithmetic, not expand(q.shape): the exported graph then takes its
    # batch shape from the data (a traced shape would be frozen into it).
    dummies = _dummy_points(q)
    pts = points(dummies) + 0.0 * q.narrow(axes.atom, 0, 1).narrow(axes.comp, 0, 1)
    vel = 0.0 * pts  # (not zeros_like: the exporter would freeze its traced shape)
    slot = {-1: 0, -2: 1, -3: 2}
    for rows in placement_levels(icdef):
        take = [[slot[icdef.rows[k][j]] for k in rows] for j in (1, 2, 3)]
        # A reference column of dummy points only is a constant with no velocity: the
        # graph folds what depends on it alone (the first atom's frame) and drops its
        # zero tangent terms.
        refs = [Dual(points(dummies[i]), None) if max(i) < len(DUMMY_POINTS_A) else
                Dual(pts.index_select(axes.atom, _index(i, q)),
                     vel.index_select(axes.atom, _index(i, q)))
                for i in take]
        here = _index(rows, q)
        qk, qk_dot = q.index_select(axes.atom, here), q_dot.index_select(axes.atom, here)
        r, theta, phi = (Dual(v, d) for v, d in zip(qk.split(1, dim=axes.comp),
                                                    qk_dot.split(1, dim=axes.comp),
                                                    strict=True))
        placed = place_atom(*refs, r, theta, phi, axis=axes.comp)
        for k in rows:
            slot[icdef.rows[k][0]] = len(slot)
        pts = torch.cat([pts, placed.v], dim=axes.atom)
        vel = torch.cat([vel, placed.d], dim=axes.atom)
    order = _index([slot[i] for i in range(n)], q)
    return pts.index_select(axes.atom, order), vel.index_select(axes.atom, order)


def placement_levels(icdef: ICDefinition) -> list[list[int]]:
    """IC row indices grouped by depth in the reference tree: level 1 holds the rows whose
    references are dummy points only, level L the rows whose deepest reference is in
    level L - 1 (row order within a level)."""
    depth = {-1: 0, -2: 0, -3: 0}
    for atom, *refs in icdef.rows:  # rows only refer to earlier rows or dummies
        depth[atom] = 1 + max(depth[r] for r in refs)
    levels: dict[int, list[int]] = {}
    for k, row in enumerate(icdef.rows):
        levels.setdefault(depth[row[0]], []).append(k)
    return [levels[d] for d in sorted(levels)]


def _index(values: list[int], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64, device=like.device)


# --- centre of mass and the initial body frame -------------------------------

def centre_of_mass(x: torch.Tensor, masses: torch.Tensor) -> torch.Tensor:
    """Mass-weighted mean of x (..., N, 3) with masses (N,) amu -> (..., 3)."""
    w = (masses / masses.sum()).to(x.dtype)
    return (x * w.unsqueeze(-1)).sum(-2)


def body_frame_rotation(positions: torch.Tensor, icdef: ICDefinition) -> torch.Tensor:
    """Rotation R (..., 3, 3) into the initial body frame, y = R (x - com), from
    centre-of-mass positions (..., N, 3): rows e1 = unit(x_a0), e3 = unit(e1 x (x_a1 - x_a0)),
    e2 = e3 x e1, where a0, a1 are the atoms of the first two IC rows."""
    x0 = positions[..., icdef.rows[0][0], :]
    x1 = positions[..., icdef.rows[1][0], :]
    e1 = x0 / torch.linalg.vector_norm(x0, dim=-1, keepdim=True)
    e3 = _cross(e1, x1 - x0)
    e3 = e3 / torch.linalg.vector_norm(e3, dim=-1, keepdim=True)
    return torch.stack([e1, _cross(e3, e1), e3], dim=-2)


def rotate(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Apply R (..., 3, 3) to every point of x (..., N, 3): y_n = R x_n."""
    return torch.matmul(x, rotation.transpose(-1, -2))


class Frame(NamedTuple):
    """Where internal coordinates were taken: centre of mass (..., 3) Å, its velocity
    (..., 3) Å/fs, and the rotation (..., 3, 3) from the lab into the dummy-point frame."""

    com: torch.Tensor
    com_velocity: torch.Tensor
    rotation: torch.Tensor


def to_internal(positions: torch.Tensor, velocities: torch.Tensor, masses: torch.Tensor,
                icdef: ICDefinition, rotation: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, Frame]:
    """Lab-frame positions (..., N, 3) Å and velocities (..., N, 3) Å/fs -> q, q_dot, frame.

    The centre of mass and its velocity are removed; the rest is rotated by ``rotation``
    (default: this structure's own initial body frame, :func:`body_frame_rotation`).
    """
    _check_shape(positions, velocities, icdef)
    com, v_com = centre_of_mass(positions, masses), centre_of_mass(velocities, masses)
    rel, vrel = positions - com.unsqueeze(-2), velocities - v_com.unsqueeze(-2)
    if rotation is None:
        rotation = body_frame_rotation(rel, icdef)
    q, q_dot = cartesian_to_internal(rotate(rel, rotation), rotate(vrel, rotation), icdef)
    return q, q_dot, Frame(com, v_com, rotation)


def to_cartesian(q: torch.Tensor, q_dot: torch.Tensor, icdef: ICDefinition,
                 frame: Frame) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`to_internal`: lab-frame positions (..., N, 3) Å, velocities Å/fs."""
    pos, vel = internal_to_cartesian(q, q_dot, icdef)
    back = frame.rotation.transpose(-1, -2)
    return (rotate(pos, back) + frame.com.unsqueeze(-2),
            rotate(vel, back) + frame.com_velocity.unsqueeze(-2))


def _check_shape(positions: torch.Tensor, velocities: torch.Tensor, icdef: ICDefinition) -> None:
    n = icdef.n_atoms
    if positions.shape[-2:] != (n, 3):
        raise InputError(f"positions must have shape (..., {n}, 3), got {tuple(positions.shape)}")
    if velocities.shape != positions.shape:
        raise InputError(f"velocities shape {tuple(velocities.shape)} differs from positions "
                         f"{tuple(positions.shape)}")
    _check_dtypes(positions, velocities)


def _check_dtypes(a: torch.Tensor, b: torch.Tensor) -> None:
    if not a.dtype.is_floating_point or a.dtype != b.dtype:
        raise InputError(f"expected two tensors of one floating dtype, got {a.dtype} and "
                         f"{b.dtype}")

