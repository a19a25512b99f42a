"""The typed description of a trained model, carried in the ONNX file's metadata.

Every key of ``metadata_props`` is ``gicnet.<field>`` and every value is JSON, so
that any onnxruntime binding (C, C++, JavaScript, ...) can read the description
without Python.  See docs/onnx-contract.md.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from gicnet_runtime.core.contract import BODY_FRAME, METADATA_PREFIX, UNITS
from gicnet_runtime.core.icdef import DUMMY_POINTS_A
from gicnet_runtime.errors import ModelError

#: Newest version of the ONNX contract (inputs, outputs, metadata) this gicnet reads.
FORMAT_VERSION = 2
#: Version of single-network files (no member axis): older readers keep reading them.
SINGLE_FORMAT_VERSION = 1
#: Version of ensemble files (``n_members``; outputs with a leading member axis).
ENSEMBLE_FORMAT_VERSION = 2
#: Time dependences of the network's correction (module docstring of gicnet_train.model);
#: the one list the model config and the metadata check share.
HEADS = ("basis", "time")
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

    def to_metadata(self) -> dict[str, str]:
        """The description as ONNX ``metadata_props``: ``gicnet.<field>`` -> JSON string."""
        out = {METADATA_PREFIX + k: json.dumps(v) for k, v in dataclasses.asdict(self).items()
               if v is not None}
        out[METADATA_PREFIX + "units"] = json.dumps(UNITS)
        return out

    @classmethod
    def from_metadata(cls, props: dict[str, str]) -> ModelDescription:
        """Parse ``metadata_props``; raises ModelError for missing, malformed or newer metadata."""
        if METADATA_PREFIX + "format_version" not in props:
            raise ModelError("model has no gicnet metadata (not a gicnet model?)")
        try:
            raw = {k[len(METADATA_PREFIX):]: json.loads(v) for k, v in props.items()
                   if k.startswith(METADATA_PREFIX)}
        except json.JSONDecodeError as err:
            raise ModelError(f"model metadata is not valid JSON: {err}") from None
        version = raw.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise ModelError(f"model metadata has an invalid format_version {version!r}")
        if version > FORMAT_VERSION:
            raise ModelError(f"model format version {version} is newer than this gicnet supports "
                             f"({FORMAT_VERSION}); upgrade gicnet")
        if raw.get("units", UNITS) != UNITS:
            raise ModelError(f"model metadata declares units {raw['units']!r}, not gicnet's "
                             f"{UNITS!r}")
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
            raise ModelError(f"model metadata is malformed: {err}") from None

    def _normalised(self) -> ModelDescription:
        n = len(self.atomic_numbers)
        rows = tuple(tuple(int(i) for i in row) for row in self.ic_rows)
        if len(self.masses_amu) != n or len(rows) != n or any(len(r) != 4 for r in rows):
            raise ValueError("atomic_numbers, masses_amu and ic_rows disagree in length")
        dummies = tuple(tuple(float(x) for x in p) for p in self.dummy_points_A)
        if dummies != DUMMY_POINTS_A:
            raise ValueError(f"dummy_points_A {dummies} differ from the dummy points gicnet's "
                             f"graphs place, {DUMMY_POINTS_A}")
        if self.frame != BODY_FRAME:
            raise ValueError(f"frame {self.frame!r} is not {BODY_FRAME!r}, the only one gicnet "
                             "implements")
        if not isinstance(self.provenance, dict) or not isinstance(self.validation, dict):
            raise ValueError("provenance and validation must be JSON objects")
        if not self.tc_fs > 0 or not self.gate_width_fs > 0:
            raise ValueError("tc_fs and gate_width_fs must be positive")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.head == "basis" and not (isinstance(self.n_basis, int) and self.n_basis >= 1):
            raise ValueError(f"a basis head needs n_basis >= 1, got {self.n_basis!r}")
        if self.n_members is not None:
            if not (isinstance(self.n_members, int) and self.n_members >= 1):
                raise ValueError(f"n_members must be an integer >= 1, got {self.n_members!r}")
            if self.format_version < ENSEMBLE_FORMAT_VERSION:
                raise ValueError(f"an ensemble file (n_members) needs format_version "
                                 f">= {ENSEMBLE_FORMAT_VERSION}, got {self.format_version}")
        members = self.member_validation
        if members is not None and (self.n_members is None or len(members) != self.n_members
                                    or not all(isinstance(m, dict) for m in members)):
            raise ValueError("member_validation must hold one object per member")
        segment = self.unroll_segment_fs
        if segment is not None and not 0 < float(segment) <= float(self.tc_fs):
            raise ValueError(f"unroll_segment_fs must lie in (0, tc_fs], got {segment}")
        return dataclasses.replace(
            self,
            atomic_numbers=tuple(int(z) for z in self.atomic_numbers),
            masses_amu=tuple(float(m) for m in self.masses_amu),
            ic_rows=rows,
            dummy_points_A=dummies,
            tc_fs=float(self.tc_fs),
            unroll_segment_fs=None if segment is None else float(segment),
            gate_width_fs=float(self.gate_width_fs),
            has_energy=bool(self.has_energy),
            member_validation=None if members is None else tuple(members),
        )
