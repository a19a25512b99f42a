"""The typed description of a trained model, carried in the ONNX file's metadata.

Every key of ``metadata_props`` is ``gicnet.<field>`` and every value is JSON, so
that any onnxruntime binding (C, C++, JavaScript, ...) can read the description
without Python.  See docs/onnx-contract.md.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from gicnet_runtime import jsonsafe
from gicnet_runtime.core.contract import BODY_FRAME, METADATA_PREFIX, UNITS
from gicnet_runtime.core.icdef import DUMMY_POINTS_A, ICDefinition
from gicnet_runtime.errors import InputError, ModelError, one_line

#: Newest version of the ONNX contract (inputs, outputs, metadata) this gicnet reads.
FORMAT_VERSION = 2
#: Version of single-network files (no member axis): older readers keep reading them.
SINGLE_FORMAT_VERSION = 1
#: Version of ensemble files (``n_members``; outputs with a leading member axis).
ENSEMBLE_FORMAT_VERSION = 2
#: Time dependences of the network's correction (module docstring of gicnet_train.model);
#: the one list the model config and the metadata check share.
HEADS = ("basis", "time")
#: How energy restoration measures a segment's total-energy deficit
#: (:mod:`gicnet_runtime.unroll.energy_restore`): at the segment's end, or as its mean over
#: the segment's check times.
RESTORE_DEFICITS = ("end", "mean")
#: Index of the three fixed dummy reference points in IC rows (0-based rows).
DUMMY_INDICES = (-1, -2, -3)


@dataclasses.dataclass(frozen=True)
class ModelDescription:
    """What a trained GICnet model is, in the project's units.

    Attributes:
        atomic_numbers: (N,) atomic numbers in the model's atom order.
        masses_amu: (N,) masses, amu.
        ic_rows: N rows (atom, ref1, ref2, ref3), 0-based atom indices; -1, -2, -3 are
            the dummy points D0, D1, D2.
        dummy_points_A: the three dummy points, Å, in the frame described by ``frame``
            (checked on reading: gicnet's graphs place exactly ``DUMMY_POINTS_A``).
        tc_fs: segment length, fs; predictions are valid for 0 <= t <= tc_fs.
        unroll_segment_fs: length of the segments long trajectories are unrolled in by
            default, fs, at most tc (measured as the better choice for this model); None: tc.
        unroll_restore_fraction: the fraction, in (0, 1], of a segment's total-energy deficit
            that energy restoration puts back at the segment's end; None: 1 (all of it).
        unroll_restore_deficit: how that deficit is measured: "end" (at the segment's end)
            or "mean" (its mean over the segment's check times, which leaves out the part
            that follows the vibrations' phase at the end); None: "end".
        unroll_reversal_share: the share k, in [0, 1], of the round-trip defect that the
            time-reversal correction adds to each segment's start before it is predicted
            (:mod:`gicnet_runtime.unroll.reversal`); None: 0 (no correction).
        gate_width_fs: a in the gate f(t) = 1 - exp(-(t/a)^2), fs.
        has_energy: whether the graph outputs ``energy_t`` (potential energy, eV).
        frame: how the dummy points are attached to the molecule (checked on reading: the
            initial body frame, ``BODY_FRAME``, is the one gicnet's graphs implement).
        head: how the network's correction depends on time: "basis" (one network pass per
            initial condition, a Chebyshev basis of ``n_basis`` functions of t) or "time"
            (the paper's: t is a network input); files without the key are "time".
        n_basis: number of basis functions of a "basis" head; None for "time".
        provenance: training data, engine, temperature, seeds, software versions.
        validation: validation errors measured at export (per-term RMSE, units in keys);
            of an ensemble file, the members' mean of each entry.
        n_members: of an ensemble file, the number M of members, whose outputs come
            stacked on a leading member axis; None for a single network.
        member_validation: of an ensemble file, each member's own ``validation``.
        format_version: ONNX contract version (1 or 2 for a single network, 2 for an
            ensemble file).
    """

    atomic_numbers: tuple[int, ...]
    masses_amu: tuple[float, ...]
    ic_rows: tuple[tuple[int, int, int, int], ...]
    dummy_points_A: tuple[tuple[float, float, float], ...]
    tc_fs: float
    gate_width_fs: float
    has_energy: bool
    frame: str = BODY_FRAME
    unroll_segment_fs: float | None = None
    unroll_restore_fraction: float | None = None
    unroll_restore_deficit: str | None = None
    unroll_reversal_share: float | None = None
    head: str = "time"
    n_basis: int | None = None
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    validation: dict[str, Any] = dataclasses.field(default_factory=dict)
    n_members: int | None = None
    member_validation: tuple[dict[str, Any], ...] | None = None
    format_version: int = SINGLE_FORMAT_VERSION

    @property
    def n_atoms(self) -> int:
        return len(self.atomic_numbers)

    @property
    def members(self) -> int:
        """Number of ensemble members in the file (1 for a single network)."""
        return 1 if self.n_members is None else self.n_members

    @property
    def default_segment_fs(self) -> float:
        """Segment length for unrolling when none is asked for, fs."""
        return self.tc_fs if self.unroll_segment_fs is None else self.unroll_segment_fs

    @property
    def restore_fraction(self) -> float:
        """Fraction of a segment's total-energy deficit restoration puts back."""
        return 1.0 if self.unroll_restore_fraction is None else self.unroll_restore_fraction

    @property
    def restore_deficit(self) -> str:
        """How restoration measures a segment's deficit: "end" or "mean"."""
        return "end" if self.unroll_restore_deficit is None else self.unroll_restore_deficit

    @property
    def reversal_share(self) -> float:
        """Share of the round-trip defect added to each segment's start (0: none)."""
        return 0.0 if self.unroll_reversal_share is None else self.unroll_reversal_share

    def to_metadata(self) -> dict[str, str]:
        """The description as ONNX ``metadata_props``: ``gicnet.<field>`` -> JSON string."""
        out = {METADATA_PREFIX + k: json.dumps(v) for k, v in dataclasses.asdict(self).items()
               if v is not None}
        out[METADATA_PREFIX + "units"] = json.dumps(UNITS)
        return out

    @classmethod
    def from_metadata(cls, props: dict[str, str]) -> ModelDescription:
        """Parse and check ``metadata_props``; raises ModelError, one line naming the field,
        for missing, malformed, out-of-range or newer metadata."""
        if METADATA_PREFIX + "format_version" not in props:
            raise ModelError("model has no gicnet metadata (not a gicnet model?)")
        raw = _parsed(props)
        version = raw.get("format_version")
        if not _is_int(version) or version < 1:
            raise ModelError(f"model metadata has an invalid format_version {_shown(version)}")
        if version > FORMAT_VERSION:
            raise ModelError(f"model format version {version} is newer than this gicnet supports "
                             f"({FORMAT_VERSION}); upgrade gicnet")
        if raw.get("units", UNITS) != UNITS:
            raise ModelError(f"model metadata declares units {_shown(raw['units'])}, not "
                             f"gicnet's {UNITS!r}")
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in raw]
        if missing:
            raise ModelError(f"model metadata lacks {', '.join(missing)}")
        try:
            desc = cls(**{k: v for k, v in raw.items() if k in fields})
            return desc._normalised()
        except (TypeError, ValueError) as err:
            raise ModelError(f"model metadata is malformed: {one_line(err)}") from None

    def _normalised(self) -> ModelDescription:
        """The description with checked, canonical values (tuples, floats); raises
        ValueError naming the first field that breaks the schema (docs/onnx-contract.md)."""
        atoms = _atoms(self.atomic_numbers, self.masses_amu, self.ic_rows)
        dummies = _points("dummy_points_A", self.dummy_points_A)
        if dummies != DUMMY_POINTS_A:
            raise ValueError(f"dummy_points_A {dummies} differ from the dummy points gicnet's "
                             f"graphs place, {DUMMY_POINTS_A}")
        if self.frame != BODY_FRAME:
            raise ValueError(f"frame {_shown(self.frame)} is not {BODY_FRAME!r}, the only one "
                             "gicnet implements")
        if not isinstance(self.provenance, dict) or not isinstance(self.validation, dict):
            raise ValueError("provenance and validation must be JSON objects")
        if not isinstance(self.has_energy, bool):
            raise ValueError(f"has_energy must be true or false, got {_shown(self.has_energy)}")
        tc_fs = _positive("tc_fs", self.tc_fs)
        segment = self.unroll_segment_fs
        if segment is not None and not 0 < _finite("unroll_segment_fs", segment) <= tc_fs:
            raise ValueError(f"unroll_segment_fs must lie in (0, tc_fs], got {_shown(segment)}")
        fraction = self.unroll_restore_fraction
        if fraction is not None and not 0 < _finite("unroll_restore_fraction", fraction) <= 1:
            raise ValueError(f"unroll_restore_fraction must lie in (0, 1], got {_shown(fraction)}")
        share = self.unroll_reversal_share
        if share is not None and not 0 <= _finite("unroll_reversal_share", share) <= 1:
            raise ValueError(f"unroll_reversal_share must lie in [0, 1], got {_shown(share)}")
        if self.unroll_restore_deficit not in (None, *RESTORE_DEFICITS):
            raise ValueError(f"unroll_restore_deficit must be one of {', '.join(RESTORE_DEFICITS)}"
                             f", got {_shown(self.unroll_restore_deficit)}")
        return dataclasses.replace(
            self, **atoms, dummy_points_A=dummies, tc_fs=tc_fs,
            unroll_segment_fs=None if segment is None else float(segment),
            unroll_restore_fraction=None if fraction is None else float(fraction),
            unroll_reversal_share=None if share is None else float(share),
            gate_width_fs=_positive("gate_width_fs", self.gate_width_fs),
            member_validation=self._checked_network())

    def _checked_network(self) -> tuple[dict[str, Any], ...] | None:
        """Check head, n_basis, n_members and format_version together; returns the
        member_validation as a tuple (None for a single network)."""
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {_shown(self.head)}")
        if self.head == "basis" or self.n_basis is not None:
            _bounded_int("n_basis", self.n_basis, MAX_N_BASIS)
        if self.n_members is not None:
            _bounded_int("n_members", self.n_members, MAX_MEMBERS)
            if self.format_version < ENSEMBLE_FORMAT_VERSION:
                raise ValueError(f"an ensemble file (n_members) needs format_version "
                                 f">= {ENSEMBLE_FORMAT_VERSION}, got {self.format_version}")
        members = self.member_validation
        if members is None:
            return None
        if (self.n_members is None or not isinstance(members, (list, tuple))
                or len(members) != self.n_members or not all(isinstance(m, dict) for m in members)):
            raise ValueError("member_validation must hold one object per member")
        return tuple(members)


#: Longest JSON text of one metadata value, characters: far above any real field (the
#: IC rows of MAX_ATOMS atoms take ~25 k), so a hostile file is refused before parsing
#: (nesting is bounded by jsonsafe.MAX_DEPTH).
MAX_VALUE_CHARS = 4 * 2**20
#: Most atoms a model may describe.  A GIC model describes one molecule (tens of atoms in
#: practice); the runtime's pairwise geometry checks take N^2 entries per structure.
MAX_ATOMS = 1000
#: Largest atomic number of a known element (oganesson).
MAX_ATOMIC_NUMBER = 118
#: Most members of one ensemble file (outputs grow with M; real ensembles have a few).
MAX_MEMBERS = 256
#: Most basis functions of a "basis" head (training allows 256).
MAX_N_BASIS = 4096
#: Characters of a bad value shown in an error message.
_SHOWN_CHARS = 60


def _parsed(props: dict[str, str]) -> dict[str, Any]:
    """The ``gicnet.<field>`` values parsed from JSON, each one's length and nesting
    bounded before it is parsed (:mod:`gicnet_runtime.jsonsafe`)."""
    raw = {}
    for key, text in props.items():
        if key.startswith(METADATA_PREFIX):
            name = key[len(METADATA_PREFIX):]
            try:
                raw[name] = jsonsafe.loads(text, max_bytes=MAX_VALUE_CHARS,
                                           what=f"model metadata field {name}")
            except InputError as err:
                raise ModelError(str(err)) from None
    return raw


def _atoms(atomic_numbers: Any, masses_amu: Any, ic_rows: Any) -> dict[str, tuple]:
    """Checked atomic_numbers (N,), masses_amu (N,) amu and ic_rows (N, 4) as tuples; the
    atom count is bounded before anything of that size is built."""
    numbers = _sequence("atomic_numbers", atomic_numbers, MAX_ATOMS)
    for i, z in enumerate(numbers):
        if not _is_int(z) or not 1 <= z <= MAX_ATOMIC_NUMBER:
            raise ValueError(f"atomic_numbers[{i}] is {_shown(z)}, not a known element "
                             f"(an integer 1..{MAX_ATOMIC_NUMBER})")
    n = len(numbers)
    masses = _sequence("masses_amu", masses_amu, MAX_ATOMS)
    rows = _sequence("ic_rows", ic_rows, MAX_ATOMS)
    if len(masses) != n or len(rows) != n:
        raise ValueError(f"atomic_numbers, masses_amu and ic_rows disagree in length "
                         f"({n}, {len(masses)}, {len(rows)})")
    masses = tuple(_positive(f"masses_amu[{i}]", m) for i, m in enumerate(masses))
    for k, row in enumerate(rows):
        if (not isinstance(row, (list, tuple)) or len(row) != 4
                or not all(_is_int(i) for i in row)):
            raise ValueError(f"ic_rows[{k}] must be 4 integers (atom, ref1, ref2, ref3), "
                             f"got {_shown(row)}")
    try:
        icdef = ICDefinition(tuple(tuple(row) for row in rows))
    except InputError as err:
        raise ValueError(f"ic_rows: {err}") from None
    return {"atomic_numbers": tuple(numbers), "masses_amu": masses, "ic_rows": icdef.rows}


def _sequence(name: str, value: Any, max_len: int) -> list | tuple:
    """``value`` if it is a JSON array of 1..max_len entries, else ValueError."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list, got {_shown(value)}")
    if not 1 <= len(value) <= max_len:
        raise ValueError(f"{name} must have 1..{max_len} entries, got {len(value)}")
    return value


def _points(name: str, value: Any) -> tuple[tuple[float, ...], ...]:
    """Three points of three finite numbers, as float tuples."""
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(
            isinstance(p, (list, tuple)) and len(p) == 3 for p in value):
        raise ValueError(f"{name} must be 3 points of 3 numbers, got {_shown(value)}")
    return tuple(tuple(_finite(name, x) for x in p) for p in value)


def _is_int(value: Any) -> bool:
    """A JSON integer (true and false are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _bounded_int(name: str, value: Any, most: int) -> int:
    if not _is_int(value) or not 1 <= value <= most:
        raise ValueError(f"{name} must be an integer 1..{most}, got {_shown(value)}")
    return value


def _finite(name: str, value: Any) -> float:
    """``value`` as a finite float, else ValueError (true/false, strings, NaN, inf)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {_shown(value)}")
    return number


def _positive(name: str, value: Any) -> float:
    number = _finite(name, value)
    if not number > 0:
        raise ValueError(f"{name} must be positive, got {_shown(value)}")
    return number


def _shown(value: Any) -> str:
    """A bad value for a one-line message: its repr, cut to a few dozen characters."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."
