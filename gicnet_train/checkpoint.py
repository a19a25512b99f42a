"""Checkpoints: tensors and plain values only, written atomically, read with weights_only."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from gicnet_runtime.errors import InputError
from gicnet_runtime.trajio import atomic_target


def save(obj: dict[str, Any], path: Path) -> None:
    """torch.save ``obj`` (state dicts, numbers, strings) to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        raise InputError(f"cannot read checkpoint {path}: {str(err).splitlines()[0]}") from None


def write_json(obj: Any, path: Path) -> None:
    """Write JSON atomically, through a temporary file of a unique name (parallel member
    processes of one run write the same summary.json)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1))


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read {path}: {err}") from None
