"""Training configuration: frozen dataclasses, serialised as JSON beside checkpoints."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from gicnet_train.model import ModelConfig

#: C-H stretch angular frequency ~0.57 rad/fs, so 1/omega ~ 1.75 fs: for harmonic motion a
#: position error d comes with a rate error omega*d, and weighting rates by this time makes
#: both terms count alike.
RATE_TIME_FS = 1.75


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Weights of the RMSE terms.

    distance (1/Å), angle and dihedral (1/rad) weight coordinate RMSEs; their rates are
    weighted by the same factors times ``rate_time_fs``; ``energy`` (1/eV) weights the
    energy-consistency RMSE.  Defaults: 1 Å of bond error counts like 1 rad (~57 deg) of
    angle error; bond errors are typically 2x smaller than angle errors (in these units),
    so equal weights give both a similar share of the loss.  The energy term is a weak
    regulariser: 0.05/eV makes a 0.04 eV (1 kcal/mol) drift count like 0.002 Å.
    """

    distance: float = 1.0
    angle: float = 1.0
    dihedral: float = 1.0
    rate_time_fs: float = RATE_TIME_FS
    energy: float = 0.05


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

    ``patience`` (0 = off): stop when the validation loss has not improved for this many
    epochs (early stopping); the best checkpoint is what the run keeps either way.

    ``time_budget_s`` (0 = off): after every epoch, the number of epochs is cut to what
    fits the rest of the budget at the mean epoch time so far (at most ``epochs``; the
    training loop's time, not loading data); the learning-rate schedule follows the new
    length.  Lets one recipe fill a fixed slot on any hardware.
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
    val_fraction: float = 0.1
    time_weighting: str = "uniform"
    seed: int = 0
    checkpoint_every_s: float = 60.0
    time_budget_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d["model"] = ModelConfig.from_dict(d["model"])
        d["weights"] = LossWeights(**d["weights"])
        energy = dict(d["energy"])
        energy["hidden"] = tuple(energy["hidden"])
        d["energy"] = EnergyTrainConfig(**energy)
        d.setdefault("energy_time_stride", 1)  # runs before the setting used every time
        d.setdefault("patience", 0)
        return cls(**d)
