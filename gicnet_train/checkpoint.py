"""Checkpoints: tensors and plain values only, written atomically, read with weights_only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from gicnet_runtime.atomic import atomic_target, write_json  # noqa: F401  (re-exported)
from gicnet_runtime.errors import InputError


def save(obj: dict[str, Any], path: Path) -> None:
    """torch.save ``obj`` (state dicts, numbers, strings) to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        torch.save(obj, tmp)


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        raise InputError(f"cannot read checkpoint {path}: {str(err).splitlines()[0]}") from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read {path}: {err}") from None
