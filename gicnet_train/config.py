"""Training configuration: frozen dataclasses, built from JSON and serialised beside checkpoints.

One source for every training setting.  ``gicnet train``'s option defaults are these
fields' defaults; ``gicnet train --config FILE`` reads the same fields from JSON
(:func:`load_config`: an object with the nested objects "model", "weights" and "energy",
every key optional); run.json stores :meth:`TrainConfig.to_dict`.  Values are checked in
one place, :func:`config_from_dict` against :data:`LIMITS`, whether they come from a file
or from the command line.

This module imports no torch, so the command line reads its defaults without it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gicnet_runtime.core.description import HEADS
from gicnet_runtime.errors import InputError

#: C-H stretch angular frequency ~0.57 rad/fs, so 1/omega ~ 1.75 fs: for harmonic motion a
#: position error d comes with a rate error omega*d, and weighting rates by this time makes
#: both terms count alike.
RATE_TIME_FS = 1.75
#: Default hidden widths and number of basis functions (measured: docs/heads.md).
DEFAULT_HIDDEN = (512, 256, 128)
DEFAULT_N_BASIS = 16
#: Most basis functions of the basis head (Chebyshev T_0..T_255).
MAX_N_BASIS = 256
#: Time weightings of the loss (:func:`gicnet_train.loss.time_weights`).
TIME_WEIGHTINGS = ("uniform", "linear")
#: Largest seed: generator seeds of ~1e11 x seed (train.sample_times) must fit 64 bits.
MAX_SEED = 10 ** 8
#: Settings that may differ when an interrupted run is resumed: they decide when it stops
#: for time and how often it checkpoints, not what an epoch learns.  Every other setting
#: must match: the checkpoints, the schedule and the members trained depend on it.
RESUMABLE = frozenset({"time_budget_s", "checkpoint_every_s"})


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture and segment settings of one GICnet model.

    hidden: MLP widths; tc_fs: segment length, fs; gate_width_fs: a in the gate
    f(t) = 1 - exp(-(t/a)^2), fs; head: "basis" or "time"; n_basis: basis functions of the
    basis head.
    """

    hidden: tuple[int, ...] = DEFAULT_HIDDEN
    tc_fs: float = 10.0
    gate_width_fs: float = 2.5
    head: str = "basis"
    n_basis: int = DEFAULT_N_BASIS

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise InputError(f"unknown head {self.head!r} (use {' or '.join(HEADS)})")
        if self.head == "basis" and self.n_basis < 1:
            raise InputError(f"n_basis must be >= 1, got {self.n_basis}")
        if not self.hidden or any(w < 1 for w in self.hidden):
            raise InputError(f"hidden widths must be positive, got {self.hidden}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """From a dict; runs written before heads existed used the time head."""
        return _build(cls, {"head": LEGACY["model.head"], **d}, "model.", _namer(), False)


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Weights of the RMSE terms.

    distance (1/Å), angle and dihedral (1/rad) weight coordinate RMSEs; their rates are
    weighted by the same factors times ``rate_time_fs``; ``energy`` (1/eV) weights the
    energy-consistency RMSE.  Defaults: 1 Å of bond error counts like 1 rad (~57 deg) of
    angle error; bond errors are typically 2x smaller than angle errors (in these units),
    so equal weights give both a similar share of the loss.  The energy term is a weak
    regulariser: 0.05/eV makes a 0.04 eV (1 kcal/mol) drift count like 0.002 Å.
    ``amplitude`` (1/Å, 0 = off) weights the RMSE of the bonds' vibrational amplitudes
    (:func:`gicnet_train.loss.bond_amplitude_error`), which counters the least-squares
    shrinkage of fast stretches towards their mean length.  ``rollout`` (0 = off) weights
    the same coordinate and amplitude terms on a second, chained segment that starts from
    the model's own prediction at t = tc (:func:`gicnet_train.rollout.rollout_term`), so the
    loss sees what an unrolled trajectory carries across a segment boundary.
    """

    distance: float = 1.0
    angle: float = 1.0
    dihedral: float = 1.0
    rate_time_fs: float = RATE_TIME_FS
    energy: float = 0.05
    amplitude: float = 0.0
    rollout: float = 0.0


@dataclasses.dataclass(frozen=True)
class EnergyTrainConfig:
    """Training of the auxiliary energy model."""

    hidden: tuple[int, ...] = (256, 128, 64)
    epochs: int = 30
    batch_size: int = 512
    lr: float = 2e-3
    frame_stride: int = 4


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (besides the data).

    ``times_per_pair``: each training step uses this many of an initial condition's K
    target times, drawn at random (0 = all, the default).  The basis head runs its network
    once per initial condition, so every target time costs little; the paper's time head
    runs it once per time, and there 4 of 20 strongly correlated times give nearly the same
    gradient at a fifth of the cost.  Validation always uses every time.

    ``energy_time_stride``: the energy-consistency term is evaluated at every this-many-th
    target time of a step (5: 2.5, 5, 7.5 and 10 fs of the 20 times every 0.5 fs); the total
    energy varies smoothly over a segment, and the energy model costs per frame.

    ``energy_rows`` (0 = all, the default): training steps evaluate the energy-consistency
    term on this many rows of each batch (its first ones, a random subset); a cheaper step
    (benchmarks/train_step.py), but a worse ethanol model (docs/analysis.md).  Validation
    always uses every row.

    ``energy_saturation_ev`` (0 = off): each frame's total-energy error e enters the
    energy term as c tanh(e / c), c in eV: unchanged where small (0.1 eV), bounded where a
    predicted geometry is far off (the energy model's 1/r inputs then give errors up to
    10^11 eV and gradient norms up to 10^17, which wrecked unclipped runs).

    ``rollout_rows`` (0 = all): the chained-segment term (``weights.rollout``, one more
    network pass per step) on this many rows of each batch with successors, the first ones
    as for ``energy_rows`` (validation uses all); ``rollout_segments`` (default 1): segments
    it scores after the first, each from the previous one's predicted end.

    ``patience`` (0 = off): stop when the validation loss has not improved for this many
    epochs (early stopping); the best checkpoint is what the run keeps either way.

    ``grad_clip`` (0 = off): before each step, the gradient is scaled down to this total
    norm (torch's ``clip_grad_norm_``) when larger.  AdamW's step is already bounded per
    parameter, but one outlier gradient still moves every weight by several learning rates
    and corrupts the moment estimates; clipping at a few times the typical norm keeps such
    steps ordinary.  Each epoch's history records its largest norm and clipped steps.

    ``time_budget_s`` (0 = off): after every epoch, the number of epochs is re-planned to
    what fits the rest of the budget at the mean epoch time so far (at most ``epochs``; the
    training loop's time, not loading data; lengthened only in the schedule's first half);
    the learning-rate schedule follows the new length.  Lets one recipe fill a fixed slot on
    any hardware.
    """

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    weights: LossWeights = dataclasses.field(default_factory=LossWeights)
    energy: EnergyTrainConfig = dataclasses.field(default_factory=EnergyTrainConfig)
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    lr_min: float = 1e-5
    warmup_steps: int = 200
    weight_decay: float = 1e-5
    stride: int = 2
    times_per_pair: int = 0
    patience: int = 5
    energy_time_stride: int = 5
    energy_rows: int = 0
    energy_saturation_ev: float = 1.0
    rollout_rows: int = 0
    rollout_segments: int = 1
    grad_clip: float = 0.0
    val_fraction: float = 0.1
    time_weighting: str = "uniform"
    seed: int = 0
    checkpoint_every_s: float = 60.0
    time_budget_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (lists for the widths): :func:`config_from_dict`'s inverse."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """From a run.json's "config"; fills in what runs written before a setting existed
        used (:data:`LEGACY`).  Types and keys are checked, ranges not (a run made through
        the Python API may use values the command line refuses, such as lr 0)."""
        d = dict(d)
        for key, value in LEGACY.items():
            _setdefault(d, key, value)
        return config_from_dict(d, check_limits=False)


#: What run.json files written before a setting existed imply for it.
LEGACY = {"energy_time_stride": 1, "energy_rows": 0, "energy_saturation_ev": 0.0, "patience": 0,
          "rollout_rows": 0, "rollout_segments": 1, "grad_clip": 0.0, "model.head": "time"}


@dataclasses.dataclass(frozen=True)
class _Range:
    """An interval of allowed numbers (floats must also be finite)."""

    low: float
    high: float = math.inf
    open_low: bool = False
    open_high: bool = False

    def __contains__(self, x: float) -> bool:
        above = x > self.low if self.open_low else x >= self.low
        below = x < self.high if self.open_high else x <= self.high
        return math.isfinite(x) and above and below

    def __str__(self) -> str:
        low, high = (f"{x:g}" if x % 1 else f"{x:.0f}" for x in (self.low, self.high))
        if self.high == math.inf:
            return f"{'>' if self.open_low else '>='} {low}"
        return f"in {'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"


_POSITIVE, _NON_NEGATIVE, _AT_LEAST_1 = _Range(0, open_low=True), _Range(0), _Range(1)

#: Allowed values of every setting (dotted key): a range, or a tuple of choices.
LIMITS: dict[str, _Range | tuple[str, ...]] = {
    "model.hidden": _AT_LEAST_1, "model.tc_fs": _POSITIVE, "model.gate_width_fs": _POSITIVE,
    "model.head": HEADS, "model.n_basis": _Range(1, MAX_N_BASIS),
    **{f"weights.{f.name}": _NON_NEGATIVE for f in dataclasses.fields(LossWeights)},
    "energy.hidden": _AT_LEAST_1, "energy.epochs": _AT_LEAST_1, "energy.batch_size": _AT_LEAST_1,
    "energy.lr": _POSITIVE, "energy.frame_stride": _AT_LEAST_1,
    "epochs": _AT_LEAST_1, "batch_size": _AT_LEAST_1, "lr": _POSITIVE, "lr_min": _NON_NEGATIVE,
    "warmup_steps": _NON_NEGATIVE, "weight_decay": _NON_NEGATIVE, "stride": _AT_LEAST_1,
    "times_per_pair": _NON_NEGATIVE, "patience": _NON_NEGATIVE, "energy_rows": _NON_NEGATIVE,
    "energy_time_stride": _AT_LEAST_1, "energy_saturation_ev": _NON_NEGATIVE,
    "rollout_rows": _NON_NEGATIVE, "rollout_segments": _AT_LEAST_1, "grad_clip": _NON_NEGATIVE,
    "val_fraction": _Range(0, 1, True, True), "time_weighting": TIME_WEIGHTINGS,
    "seed": _Range(0, MAX_SEED),
    "checkpoint_every_s": _NON_NEGATIVE, "time_budget_s": _NON_NEGATIVE,
}


def config_from_dict(data: Mapping[str, Any], labels: Mapping[str, str] | None = None,
                     source: str | None = None, check_limits: bool = True) -> TrainConfig:
    """The TrainConfig of JSON-like ``data`` (nested dicts; missing keys take the defaults).

    Unknown keys, wrong types and (with ``check_limits``) values outside :data:`LIMITS`
    raise a one-line InputError naming the key (``unknown setting "model.hiden"``).
    ``labels`` names keys differently in those messages (e.g. "--tc-fs" for a flag);
    ``source`` is the file the other keys came from.
    """
    return _build(TrainConfig, data, "", _namer(labels, source), check_limits)


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                labels: Mapping[str, str] | None = None) -> TrainConfig:
    """The TrainConfig of the JSON file ``path`` (None: the defaults) with ``overrides``
    (dotted key -> value, e.g. ``{"model.tc_fs": 5.0}``) put over it, checked as by
    :func:`config_from_dict`; ``labels`` names the overridden keys in error messages."""
    data = {} if path is None else read_settings(path)
    overrides = overrides or {}
    for key, value in overrides.items():
        _set(data, key, value)
    labels = {**{key: f'setting "{key}"' for key in overrides}, **(labels or {})}
    return config_from_dict(data, labels, None if path is None else str(path))


def read_settings(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``, or a one-line InputError."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as err:
        raise InputError(f"cannot read settings {path}: {err.strerror or err}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"settings {path} are not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise InputError(f"settings {path} must hold a JSON object, got {_show(data)}")
    return data


def default_setting(key: str) -> Any:
    """The default value of setting ``key`` (dotted, e.g. "model.tc_fs")."""
    value: Any = TrainConfig()
    for part in key.split("."):
        value = getattr(value, part)
    return value


def resume_differences(before: TrainConfig, after: TrainConfig) -> list[str]:
    """``"key old -> new"`` for every setting that differs, except the :data:`RESUMABLE`."""
    old, new = _leaves(before.to_dict()), _leaves(after.to_dict())
    return [f"{key} {_show(old[key])} -> {_show(new[key])}" for key in old
            if key not in RESUMABLE and old[key] != new[key]]


def _namer(labels: Mapping[str, str] | None = None, source: str | None = None
           ) -> Callable[[str], str]:
    where = f" in {source}" if source else ""
    return lambda key: (labels or {}).get(key) or f'setting "{key}"{where}'


def _build(cls, data: Any, prefix: str, name: Callable[[str], str], check: bool):
    """An instance of dataclass ``cls`` from the mapping ``data`` at ``prefix``."""
    if not isinstance(data, Mapping):
        what = name(prefix.rstrip(".")) if prefix else "the settings"
        raise InputError(f"{what} must be a JSON object, got {_show(data)}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in known:
            raise InputError(f"unknown {name(prefix + str(key))} (known there: "
                             f"{', '.join(known)})")
    values = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            values[key] = _build(hint, value, f"{prefix}{key}.", name, check)
            continue
        values[key] = _value(value, hint, name(prefix + key))
        if check:
            _check(values[key], LIMITS[prefix + key], name(prefix + key))
    return cls(**values)


def _value(value: Any, hint: Any, label: str) -> Any:
    """``value`` as the field type ``hint`` (int, float, str or tuple of ints)."""
    def is_int(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    if typing.get_origin(hint) is tuple:
        if isinstance(value, (list, tuple)) and value and all(map(is_int, value)):
            return tuple(value)
        raise InputError(f"{label} must be a non-empty list of integers, got {_show(value)}")
    if (hint is int and is_int(value)) or (hint is str and isinstance(value, str)):
        return value
    if hint is float and (is_int(value) or isinstance(value, float)):
        return float(value)
    kind = {int: "an integer", float: "a number", str: "a string"}[hint]
    raise InputError(f"{label} must be {kind}, got {_show(value)}")


def _check(value: Any, limit: _Range | tuple[str, ...], label: str) -> None:
    if isinstance(limit, tuple):
        if value not in limit:
            raise InputError(f"{label} must be one of {', '.join(limit)}, got {_show(value)}")
        return
    if isinstance(value, tuple):
        if not all(v in limit for v in value):
            raise InputError(f"{label} must hold integers {limit}, got {_show(value)}")
    elif value not in limit:
        kind = "a finite number" if isinstance(value, float) else "an integer"
        raise InputError(f"{label} must be {kind} {limit}, got {_show(value)}")


def _set(data: dict, key: str, value: Any) -> None:
    """``data[a][b] = value`` for ``key`` "a.b", making the objects on the way."""
    *parents, leaf = key.split(".")
    node = data
    for depth, part in enumerate(parents):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise InputError(f'setting "{".".join(parents[:depth + 1])}" must be a JSON object, '
                             f"got {_show(node)}")
    node[leaf] = value


def _setdefault(data: dict, key: str, value: Any) -> None:
    """Like :func:`_set`, for a key that is missing (nested objects copied, not changed)."""
    head, _, rest = key.partition(".")
    if not rest:
        data.setdefault(head, value)
    elif isinstance(data.get(head, {}), dict):
        data[head] = dict(data.get(head, {}))
        _setdefault(data[head], rest, value)


def _leaves(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts flattened to dotted keys."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, Mapping):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _show(value: Any) -> str:
    """A value as the messages print it: 0.001, inf, [512, 256], "basis"."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_show, value)) + "]"
    return json.dumps(value, default=repr)
