"""Which isomer a trajectory ends in, from one dihedral (e.g. azobenzene's CNNC).

A cis/trans isomer is read off a dihedral φ: cis when |φ| < 90°, trans otherwise.  A
trajectory's outcome is decided on its last ``window`` frames: "cis" or "trans" when
every one of them lies at least ``margin`` away from the 90° dividing line on the same
side, "undecided" when the molecule is still crossing (or sits on the line).  Over many
starts, :func:`cis_fraction` gives the fraction of cis outcomes among the decided ones
with its binomial standard error, and :func:`agreement` how often two sets of runs from
the same starts (a model and the reference) end in the same isomer.  :func:`transition_frame`
dates a trajectory's isomerization: the first frame after its last crossing of the 90° line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from gicnet_runtime.core.internal import wrap_angle
from gicnet_runtime.errors import InputError

CIS, TRANS, UNDECIDED = "cis", "trans", "undecided"
#: Default distance from the 90° line that a decided outcome keeps, rad (20°).
DEFAULT_MARGIN_RAD = np.deg2rad(20.0)


def isomer(dihedral_rad) -> np.ndarray:
    """"cis" or "trans" for each dihedral (any shape, rad)."""
    return np.where(np.abs(wrap_angle(np.asarray(dihedral_rad, dtype=np.float64)))
                    < np.pi / 2, CIS, TRANS)


def outcome(dihedral_rad: np.ndarray, window: int = 1,
            margin_rad: float = DEFAULT_MARGIN_RAD) -> str:
    """The isomer a trajectory ends in, from its dihedral (T,) rad per frame (see the
    module docstring)."""
    phi = np.abs(wrap_angle(np.asarray(dihedral_rad, dtype=np.float64)))
    if phi.ndim != 1 or phi.size == 0 or not np.all(np.isfinite(phi)):
        raise InputError("an outcome needs a finite dihedral per frame")
    if not 1 <= window <= phi.size:
        raise InputError(f"window must be within 1..{phi.size} frames, got {window}")
    last = phi[-window:]
    if np.all(last < np.pi / 2 - margin_rad):
        return CIS
    if np.all(last > np.pi / 2 + margin_rad):
        return TRANS
    return UNDECIDED


def transition_frame(dihedral_rad: np.ndarray) -> int | None:
    """The first frame on the final side of the 90° line after the dihedral's last crossing
    of it, or None when it never crosses; dihedral (T,) rad per frame."""
    phi = np.abs(wrap_angle(np.asarray(dihedral_rad, dtype=np.float64)))
    if phi.ndim != 1 or not np.all(np.isfinite(phi)):
        raise InputError("a transition needs a finite dihedral per frame")
    crossings = np.nonzero(np.diff(phi < np.pi / 2))[0]
    return int(crossings[-1]) + 1 if crossings.size else None


@dataclasses.dataclass(frozen=True)
class Fraction:
    """A fraction of ``count`` of ``total`` outcomes with its binomial standard error
    sqrt(p (1 - p) / total); ``undecided`` outcomes are left out of ``total``."""

    count: int
    total: int
    undecided: int

    @property
    def value(self) -> float:
        return self.count / self.total if self.total else float("nan")

    @property
    def standard_error(self) -> float:
        if not self.total:
            return float("nan")
        p = self.value
        return float(np.sqrt(p * (1.0 - p) / self.total))


def cis_fraction(outcomes: Sequence[str]) -> Fraction:
    """The fraction of cis outcomes among the decided ones."""
    decided = [o for o in outcomes if o != UNDECIDED]
    return Fraction(sum(o == CIS for o in decided), len(decided),
                    len(outcomes) - len(decided))


def agreement(predicted: Sequence[str], reference: Sequence[str]) -> Fraction:
    """How often runs from the same starts end in the same isomer, over the starts that
    both decided."""
    if len(predicted) != len(reference):
        raise InputError(f"{len(predicted)} predicted outcomes against {len(reference)} "
                         "reference ones")
    pairs = [(p, r) for p, r in zip(predicted, reference) if UNDECIDED not in (p, r)]
    return Fraction(sum(p == r for p, r in pairs), len(pairs), len(predicted) - len(pairs))
