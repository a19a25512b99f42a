"""Checkpoints: tensors and plain values only, written atomically, read with weights_only.

A checkpoint gicnet reads (``last.pt``, ``best.pt``, ``energy/model.pt`` of a run folder)
must be a torch zip archive (the only kind :func:`save` writes; torch checks each stored
tensor against its record's size) holding a dict of tensors and plain values:
``torch.load(weights_only=True)`` refuses pickled objects, and that refusal, like any
other failure, is one line of :class:`~gicnet_runtime.errors.InputError`.  JSON files of
a run are read with :func:`gicnet_runtime.jsonsafe.read` (bounded size and nesting).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch

from gicnet_runtime import jsonsafe
from gicnet_runtime.atomic import atomic_target, write_json  # noqa: F401  (re-exported)
from gicnet_runtime.errors import InputError, one_line

#: What torch.load raises for a file it cannot read.  UnpicklingError (pickle's, reached
#: through torch.serialization: gicnet imports no pickle module) is weights_only's refusal.
_UNPICKLING = torch.serialization.pickle.UnpicklingError
_LOAD_FAILURES = (OSError, RuntimeError, EOFError, ValueError, TypeError, KeyError,
                  IndexError, AttributeError, MemoryError, zipfile.BadZipFile)
#: Marks the part of torch's weights_only message that names what it refused.
_DETAIL_MARK = "WeightsUnpickler error:"


def save(obj: dict[str, Any], path: Path) -> None:
    """torch.save ``obj`` (state dicts, numbers, strings) to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        torch.save(obj, tmp)


def load(path: Path) -> dict[str, Any]:
    """The dict of tensors and plain values in checkpoint ``path``, on the CPU; never
    unpickles anything else (InputError, one line)."""
    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):
        raise InputError(f"cannot read checkpoint {path}: not a torch checkpoint (a zip "
                         "archive, the kind gicnet writes)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except _UNPICKLING as err:
        raise InputError(f"cannot read checkpoint {path}: {_refusal(err)}") from None
    except _LOAD_FAILURES as err:
        detail = one_line(err)
        if not isinstance(err, (OSError, RuntimeError, ValueError)):  # e.g. KeyError: 255
            detail = f"damaged ({type(err).__name__}: {detail})"
        raise InputError(f"cannot read checkpoint {path}: {detail}") from None
    if not isinstance(obj, dict):
        raise InputError(f"cannot read checkpoint {path}: it holds a {type(obj).__name__}, "
                         "not a gicnet checkpoint (a dict)")
    return obj


def _refusal(err: BaseException) -> str:
    """Why weights_only refused the file, from torch's long message: pickled objects
    (``Unsupported global: GLOBAL __main__.Custom ...``) or damage (``Unsupported operand``)."""
    text = str(err)
    detail = text.split(_DETAIL_MARK, 1)[-1]
    first = next((line for line in detail.splitlines() if line.strip()), "")
    detail = one_line(first.split(". ", 1)[0]) or type(err).__name__
    if "global" in detail.lower():
        return (f"it holds pickled objects ({detail}), which gicnet does not load; a gicnet "
                "checkpoint holds only tensors and plain values")
    return f"damaged, or holding pickled objects gicnet does not load ({detail})"


def read_json(path: Path) -> Any:
    """The JSON document in ``path`` (a run's run.json, final.json, metrics.json), bounded
    by :func:`gicnet_runtime.jsonsafe.read`; InputError (one line, naming the path) when
    unreadable, malformed, too large or too deep."""
    return jsonsafe.read(path)
