"""`gicnet info`: a model's description, short by default and whole with --verbose."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import click

from gicnet_runtime.core.elements import ELEMENT_SYMBOLS, symbol  # noqa: F401


@click.command()
@click.option("--model", "models", multiple=True, type=click.Path(),
              help="Model .onnx file or folder (ensemble).  [default: the shipped model]")
@click.option("--verbose", "-v", is_flag=True,
              help="Also print each file's whole description (provenance, validation) as JSON.")
def info(models, verbose):
    """Print a model's description: atoms, times, network, training data and validation."""
    import dataclasses
    import json

    from gicnet_runtime.core.model import load_model

    model = load_model(list(models) or None, device="cpu")
    desc = model.description
    click.echo(f"members: {', '.join(str(p) for p in model.paths)}"
               + (f" ({model.n_members} members)" if model.n_members > 1 else ""))
    click.echo(f"atoms ({desc.n_atoms}): {' '.join(symbols(desc.atomic_numbers))}")
    click.echo(f"masses_amu: {' '.join(f'{m:g}' for m in desc.masses_amu)}")
    click.echo(f"tc_fs: {desc.tc_fs:g}   gate_width_fs: {desc.gate_width_fs:g}   "
               f"has_energy: {desc.has_energy}   frame: {desc.frame}   "
               f"format_version: {desc.format_version}")
    click.echo(f"unroll_segment_fs: {desc.default_segment_fs:g}"
               + ("" if desc.unroll_segment_fs is not None else " (tc; not in the metadata)"))
    click.echo(f"energy restoration: {desc.restore_fraction:g} of the deficit "
               f"{'at the segment end' if desc.restore_deficit == 'end' else 'over the segment'}"
               + ("" if desc.unroll_restore_fraction is not None
                  or desc.unroll_restore_deficit is not None else " (not in the metadata)"))
    click.echo(f"time-reversal correction: {desc.reversal_share:g} of the round-trip defect"
               + ("" if desc.unroll_reversal_share is not None else " (not in the metadata)"))
    validations = [v for s in model.sessions
                   for v in (s.description.member_validation or (s.description.validation,))]
    for line in summary_lines(desc.head, desc.n_basis, desc.provenance, validations):
        click.echo(line)
    if not verbose:
        click.echo("(gicnet info --verbose prints the whole description)")
        return
    for session in model.sessions:
        whole = dataclasses.asdict(session.description)
        click.echo(f"{session.path.name}: {json.dumps(whole, indent=2, sort_keys=True)}")


def symbols(atomic_numbers: Sequence[int]) -> list[str]:
    """Element symbols of ``atomic_numbers`` (``Z=200`` for one beyond the table)."""
    return [symbol(int(z)) for z in atomic_numbers]


def summary_lines(head: str, n_basis: int | None, provenance: dict[str, Any],
                  validations: Sequence[dict[str, Any]]) -> list[str]:
    """A few lines on the network, its training data and export, and the validation errors
    (the members' mean), from a description's fields; missing entries are left out."""
    config = _get(provenance, "train_config", "model")
    config = config if isinstance(config, dict) else {}
    network = f"network: {head} head" + (f", K = {n_basis} basis functions"
                                         if n_basis is not None else "")
    if isinstance(config.get("hidden"), list):
        network += f", hidden layers {'-'.join(str(h) for h in config['hidden'])}"
    lines = [network]
    trained = _trained_on(provenance)
    if trained:
        lines.append(f"trained on: {trained}")
    exported = [str(provenance[k]) for k in ("exported_utc",) if k in provenance]
    exported += [f"{name} {provenance[k]}" for name, k in
                 (("gicnet", "gicnet_version"), ("torch", "torch_version")) if k in provenance]
    if exported:
        lines.append(f"exported: {', '.join(exported)}")
    if not (trained or exported) and provenance:
        lines.append(f"provenance: {', '.join(sorted(provenance))}")
    validation = _validation(validations)
    if validation:
        lines.append(validation)
    return lines


def _trained_on(provenance: dict[str, Any]) -> str:
    """``36 GFN2-xTB (...) trajectories of CH3CH2OH (+4 for validation), 10000 fs at
    0.5 fs, 300 K``, or the parts of it the provenance holds."""
    data = provenance.get("data") or {}
    if not isinstance(data, dict):
        return ""
    engine = data.get("engine_version") or data.get("engine")
    count = provenance.get("n_train_trajectories")
    text = " ".join(str(x) for x in (count, engine) if x is not None)
    if data.get("molecule"):
        text += (" trajectories of " if text else "") + str(data["molecule"])
    if provenance.get("n_val_trajectories") is not None:
        text += f" (+{provenance['n_val_trajectories']} for validation)"
    if data.get("duration_fs") is not None:
        text += f", {_number(data['duration_fs'])} fs each"
        text += f" at {_number(data['dt_fs'])} fs" if data.get("dt_fs") is not None else ""
    if data.get("temperature_K") is not None:
        text += f", {_number(data['temperature_K'])} K"
    return text.strip(", ")


def _validation(validations: Sequence[dict[str, Any]]) -> str:
    """The members' mean validation errors on one line: bond Å, angles deg, RMSD at tc Å."""
    def mean(key: str) -> float | None:
        values = [v[key] for v in validations if isinstance(v.get(key), (int, float))]
        return sum(values) / len(values) if values else None

    parts = []
    for key, name, scale, unit, digits in (
            ("bond_rmse", "bond", 1.0, "A", 4), ("angle_rmse", "angle", math.degrees(1), "deg", 3),
            ("dihedral_rmse", "dihedral", math.degrees(1), "deg", 3),
            ("cartesian_rmsd_at_tc_A", "RMSD at tc", 1.0, "A", 4)):
        value = mean(key)
        if value is not None:
            parts.append(f"{name} {value * scale:.{digits}f} {unit}")
    if not parts:
        return ""
    who = f"mean of {len(validations)} members" if len(validations) > 1 else "one network"
    return f"validation RMSE ({who}): {', '.join(parts)}"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping
