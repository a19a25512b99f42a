"""What drives a motion: integrated gradients (IG) of one internal coordinate at time t.

The explained output F is a chosen coordinate (bond Å, angle or dihedral rad) of the
positions a model predicts at time t, averaged over the ensemble's members.  Its inputs
are the model's generalized internal coordinates of the initial condition, z = (q, q_dot)
per IC row: distance, angle, dihedral (Å, rad, rad) and their rates (Å/fs, rad/fs), in
the initial body frame (:mod:`gicnet_runtime.core.internal`).  IG attributes
F(z) - F(z') to each input j as

    A_j = (z_j - z'_j) ∫_0^1 ∂F/∂z_j (z' + α (z - z')) dα,

along the straight path from a baseline z' (dihedral differences taken the short way
round).  The integral is the midpoint rule with ``steps`` points.

Method: finite differences through the ONNX runtime (torch-free).  ∂F/∂z_j is a central
difference with a step of ``FD_FRACTION`` of the input's own displacement |z_j - z'_j|, so
an input that does not move gets exactly zero and each attribution's finite-difference
error is a fixed fraction of its size.  Completeness, Σ_j A_j = F(z) - F(z'), then holds up
to the midpoint rule's O(1/steps²) error plus float32 noise of the network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from gicnet_runtime.core import internal
from gicnet_runtime.core.contract import POSITIONS_T
from gicnet_runtime.core.elements import symbol
from gicnet_runtime.core.icdef import ICDefinition
from gicnet_runtime.errors import InputError, one_line

#: Central-difference step, as a fraction of each input's displacement from the baseline.
FD_FRACTION = 1e-2
#: Midpoint-rule points along the path.
DEFAULT_STEPS = 32
_COLUMN_NAMES = ("bond", "angle", "dihedral")
#: The six kinds of inputs, in the order of the 6N inputs' blocks (per IC row: bond,
#: angle, dihedral; the positions first, then the rates).
INPUT_KINDS = ("bond", "angle", "dihedral", "bond rate", "angle rate", "dihedral rate")


@dataclasses.dataclass(frozen=True)
class Attribution:
    """Integrated-gradients attribution of one coordinate at one time.

    Attributes:
        labels: (6N,) input names (:func:`input_labels`): per IC row its bond, angle and
            dihedral, then their rates.
        units: (6N,) the inputs' units (Å, rad, Å/fs, rad/fs).
        inputs: (6N,) input values z; baseline: (6N,) baseline values z'.
        values: (6N,) attributions of the ensemble's mean prediction, in the coordinate's
            unit (Å or rad).
        output: F(z); baseline_output: F(z'), unwrapped along the path.
        coordinate: what was explained; time_fs: when, fs; steps: midpoint points.
        member_values: (M, 6N) each member's own attributions (their mean is ``values``
            up to the wrapping of dihedral differences).
    """

    labels: tuple[str, ...]
    units: tuple[str, ...]
    inputs: np.ndarray
    baseline: np.ndarray
    values: np.ndarray
    output: float
    baseline_output: float
    coordinate: internal.Coordinate
    time_fs: float
    steps: int
    member_values: np.ndarray | None = None

    @property
    def completeness_error(self) -> float:
        """Σ A_j - (F(z) - F(z')), in the coordinate's unit."""
        return float(self.values.sum() - (self.output - self.baseline_output))

    @property
    def relative_completeness_error(self) -> float:
        """|completeness_error| over |F(z) - F(z')|."""
        return float(relative_completeness(self.completeness_error,
                                           self.output - self.baseline_output))

    def table(self, top: int | None = None) -> list[tuple[str, float, float, float]]:
        """(label, input, baseline, attribution) rows by decreasing |attribution|."""
        order = np.argsort(-np.abs(self.values), kind="stable")[:top]
        return [(self.labels[i], float(self.inputs[i]), float(self.baseline[i]),
                 float(self.values[i])) for i in order]


def relative_completeness(error, change):
    """|Σ A - (F(z) - F(z'))| / |F(z) - F(z')| from the completeness error and the change
    (numbers or arrays)."""
    return np.abs(error) / np.maximum(np.abs(change), 1e-300)


def input_labels(icdef: ICDefinition, atomic_numbers=None
                 ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Names and units of the 6N inputs, as a chemist reads them: ``bond O3-C2``, ``angle
    O3-C2-C1``, ``dihedral H4-C1-C2-O3`` and ``d/dt bond O3-C2`` for the rates; atoms by
    element and 1-based index (the index alone without ``atomic_numbers``), the dummy
    reference points D0, D1, D2."""
    def name(i: int) -> str:
        if i < 0:
            return f"D{-1 - i}"
        return symbol(int(atomic_numbers[i])) + str(i + 1) if atomic_numbers is not None \
            else str(i + 1)

    labels, units = [], []
    for rate in (False, True):
        for row in icdef.rows:
            atoms = [name(i) for i in row]
            for col, kind in enumerate(_COLUMN_NAMES):
                label = f"{kind} {'-'.join(atoms[:col + 2])}"
                labels.append(f"d/dt {label}" if rate else label)
                unit = "Å" if col == internal.DISTANCE else "rad"
                units.append(f"{unit}/fs" if rate else unit)
    return tuple(labels), tuple(units)


def input_kinds(n_atoms: int) -> np.ndarray:
    """(6N,) the kind of each input, one of ``INPUT_KINDS``."""
    columns = np.tile(np.arange(3), 2 * n_atoms)
    rate = np.repeat([0, 3], 3 * n_atoms)
    return np.array(INPUT_KINDS)[columns + rate]


def integrated_gradients(model, positions: np.ndarray, velocities: np.ndarray,
                         coordinate: internal.Coordinate, time_fs: float,
                         baseline_positions: np.ndarray | None = None,
                         baseline_velocities: np.ndarray | None = None,
                         steps: int = DEFAULT_STEPS) -> Attribution:
    """IG attribution of ``coordinate`` at ``time_fs`` (see the module docstring).

    Args:
        model: a :class:`gicnet_runtime.core.model.Model`.
        positions, velocities: (N, 3) Å, Å/fs, the initial condition explained.
        coordinate: the explained coordinate of the predicted positions.
        time_fs: time within the segment [0, tc], fs.
        baseline_positions, baseline_velocities: (N, 3) the baseline; default the input's
            own positions with zero velocities (then only rates carry attribution).
        steps: midpoint-rule points.
    """
    desc = model.description
    if not 0.0 <= time_fs <= desc.tc_fs:
        raise InputError(f"time_fs must lie within [0, {desc.tc_fs:g}] fs, got {time_fs:g}")
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    icdef, masses = ICDefinition(desc.ic_rows), np.asarray(desc.masses_amu)
    z = _features(positions, velocities, masses, icdef)
    if baseline_positions is None:
        baseline_positions = positions
    if baseline_velocities is None:
        baseline_velocities = np.zeros_like(np.asarray(velocities, dtype=np.float64))
    z_base = _features(baseline_positions, baseline_velocities, masses, icdef)
    delta = _displacement(z, z_base, icdef.n_atoms)
    alphas = (np.arange(steps) + 0.5) / steps
    path = z_base + alphas[:, None] * delta                                # (S, 6N)
    h = FD_FRACTION * delta                                                # (6N,)
    eye = np.eye(delta.size) * h
    probes = np.concatenate([path[:, None, :] + eye, path[:, None, :] - eye], axis=1)
    ends = np.stack([z_base, z_base + delta])
    members = _outputs(model, np.concatenate([ends, path, probes.reshape(-1, delta.size)]),
                       icdef, coordinate, time_fs)                        # (M, rows)
    values = members.mean(axis=0)
    line = np.concatenate([[values[0]], values[2:2 + steps], [values[1]]])
    if coordinate.kind == "dihedral":
        line = np.unwrap(line)
    moved = h != 0
    attribution, member_attribution = (_attribution(v, steps, delta.size, moved, coordinate)
                                       for v in (values, members))
    labels, units = input_labels(icdef, desc.atomic_numbers)
    return Attribution(labels, units, z, z_base, attribution, float(line[-1]), float(line[0]),
                       coordinate, float(time_fs), steps, member_attribution)


def _attribution(values: np.ndarray, steps: int, n_inputs: int, moved: np.ndarray,
                 coordinate: internal.Coordinate) -> np.ndarray:
    """Attributions (..., 6N) from F at [ends, path, probes] (..., rows): the mean over the
    path of each input's central difference F(+h) - F(-h), over 2 FD_FRACTION."""
    diffs = values[..., 2 + steps:].reshape(*values.shape[:-1], steps, 2, n_inputs)
    grad_h = diffs[..., 0, :] - diffs[..., 1, :]                          # F(+h) - F(-h)
    if coordinate.kind == "dihedral":
        grad_h = internal.wrap_angle(grad_h)
    attribution = np.zeros((*values.shape[:-1], n_inputs))
    attribution[..., moved] = np.mean(grad_h[..., moved], axis=-2) / (2 * FD_FRACTION)
    return attribution


def _features(positions, velocities, masses: np.ndarray, icdef: ICDefinition) -> np.ndarray:
    """(6N,) z = (q, q_dot) of one structure in its own initial body frame."""
    pos = np.asarray(positions, dtype=np.float64)
    vel = np.asarray(velocities, dtype=np.float64)
    if pos.shape != (icdef.n_atoms, 3) or vel.shape != pos.shape:
        raise InputError(f"positions and velocities must have shape ({icdef.n_atoms}, 3), "
                         f"got {pos.shape} and {vel.shape}")
    q, q_dot, _ = internal.to_internal(pos, vel, masses, icdef)
    return np.concatenate([q.ravel(), q_dot.ravel()])


def _displacement(z: np.ndarray, z_base: np.ndarray, n_atoms: int) -> np.ndarray:
    """z - z', dihedral positions (not rates) wrapped to take the short way round."""
    delta = z - z_base
    dihedral = np.zeros(z.size, dtype=bool)
    dihedral[internal.DIHEDRAL:3 * n_atoms:3] = True
    delta[dihedral] = internal.wrap_angle(delta[dihedral])
    return delta


def _outputs(model, z: np.ndarray, icdef: ICDefinition, coordinate: internal.Coordinate,
             time_fs: float) -> np.ndarray:
    """F of every member for every row of z (B, 6N): the coordinate at ``time_fs``, (M, B)
    (dihedrals of members 1.. brought next to member 0's, so that their mean is sound)."""
    n = icdef.n_atoms
    q, q_dot = z[:, :3 * n].reshape(-1, n, 3), z[:, 3 * n:].reshape(-1, n, 3)
    pos, vel = internal.to_body_cartesian(q, q_dot, icdef)
    times = np.full((len(z), 1), time_fs)
    per_member = coordinate.value(model.run(pos, vel, times)[POSITIONS_T][:, :, 0]
                                  .astype(np.float64))
    if coordinate.kind == "dihedral":
        per_member = per_member[0] + internal.wrap_angle(per_member - per_member[0])
    return per_member


def read_structure(path, n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """First frame of an ASE-readable file: positions (N, 3) Å and velocities (N, 3) Å/fs
    (zero when the file has none)."""
    from gicnet_runtime.io.formats import require
    from gicnet_runtime.units import ase_velocities_to_a_per_fs

    try:
        atoms = require("ase.io").read(str(path), index=0)
    except Exception as err:  # noqa: BLE001 (ASE raises many unrelated types on bad files)
        raise InputError(f"cannot read {path}: {one_line(err)}") from None
    if len(atoms) != n_atoms:
        raise InputError(f"{path} has {len(atoms)} atoms, the model {n_atoms}")
    velocities = (ase_velocities_to_a_per_fs(atoms.get_velocities())
                  if "momenta" in atoms.arrays else np.zeros((n_atoms, 3)))
    return atoms.get_positions(), velocities


def format_table(attribution: Attribution, top: int | None = None) -> Sequence[str]:
    """Text lines of :meth:`Attribution.table`, with F and the completeness check."""
    unit = attribution.coordinate.unit
    lines = [f"{attribution.coordinate.label()} at t = {attribution.time_fs:g} fs: "
             f"F(input) = {attribution.output:.6g} {unit}, F(baseline) = "
             f"{attribution.baseline_output:.6g} {unit}, sum of attributions - difference = "
             f"{attribution.completeness_error:.2e} {unit} ({attribution.steps} steps)",
             f"{'input':<28}{'value':>12}{'baseline':>12}{'attribution':>14}"]
    for label, value, base, attr in attribution.table(top):
        lines.append(f"{label:<28}{value:>12.5g}{base:>12.5g}{attr:>14.5g}")
    return lines
