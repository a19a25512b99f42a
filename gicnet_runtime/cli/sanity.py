"""``--unphysical``: what a physical-sanity violation is, for predict, propagate and
evaluate (the checks: :mod:`gicnet_runtime.core.sanity`), and the warnings it prints."""

from __future__ import annotations

from collections.abc import Iterable

import click

from gicnet_runtime.core import sanity as checks
from gicnet_runtime.errors import ModelError

UNPHYSICAL_HELP = (
    "What a physically implausible prediction is: a bond outside "
    f"{checks.BOND_RATIO_RANGE[0]:g}-{checks.BOND_RATIO_RANGE[1]:g} times its initial length, "
    f"the molecule below 1/{checks.FROZEN_FACTOR:g} of its initial temperature for "
    f"{checks.FROZEN_WINDOW_FS:g} fs (frozen) or above {checks.TEMPERATURE_FACTOR:g} times it "
    f"(at least {checks.TEMPERATURE_FACTOR * checks.COLD_START_K:g} K), an atom faster than "
    f"{checks.MAX_SPEED_A_PER_FS:g} Å/fs or {checks.EXPLOSION_MARGIN_A:g} Å beyond the "
    "initial extent.  error: predict writes nothing and exits 1; propagate stops the "
    "trajectory once no ensemble member avoids it, and exits 1; evaluate stops that long "
    "trajectory (not stable).  warn: the run goes on, and each trajectory's first violation "
    "is printed as a warning.")


def unphysical_option(command):
    """--unphysical [error|warn] (predict, propagate, evaluate)."""
    return click.option("--unphysical", type=click.Choice(checks.UNPHYSICAL_MODES),
                        default="error", show_default=True, help=UNPHYSICAL_HELP)(command)


def warn(messages: Iterable[str | None]) -> None:
    """Each message that is not None as one ``gicnet: warning: ...`` line on stderr."""
    for message in messages:
        if message is not None:
            click.echo(f"gicnet: warning: {message}", err=True)


def check_prediction(model, conditions, result, times_fs, frames, unphysical: str) -> None:
    """The first violation of each initial condition's predicted frames (``result``, a
    Prediction at ``times_fs`` from ``conditions``; ``frames``: their --init frames): a
    ModelError for the first one (``unphysical`` "error") or a warning for each ("warn")."""
    found = checks.prediction_violations(model.description, conditions.positions,
                                         conditions.velocities, result.positions,
                                         result.velocities, times_fs)
    messages = [None if v is None else f"--init frame {frame}: unphysical prediction: {v}"
                for v, frame in zip(found, frames)]
    if unphysical == "error":
        for message in messages:
            if message is not None:
                raise ModelError(message)
    warn(messages)


def warn_runs(infos: Iterable[dict]) -> None:
    """With ``--unphysical warn``: what each run's ``info["unphysical"]`` recorded."""
    warn(info.get("unphysical") for info in infos)


def warn_unstable(rows: list[dict]) -> None:
    """evaluate: why each long trajectory that is not stable stopped early or which check
    it broke (its stability row's ``failure`` or ``unphysical``), where it says."""
    warn(row["failure"] or (row["unphysical"] and f"trajectory {k}: {row['unphysical']}")
         for k, row in enumerate(rows) if not row["stable"])
