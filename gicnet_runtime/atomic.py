"""Atomic file writes: the one implementation every writer in gicnet uses.

A file is written under a temporary name of its own in the target folder and renamed over
the target at the end, so a reader never sees a half-written file and an error (or a kill)
never leaves one behind under the real name.  The temporary name is unique per process and
call (``.NAME.PID.HEX.tmp``), so parallel writers of the same target never share one.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gicnet_runtime.errors import InputError, one_line

#: Pattern of the temporary files :func:`atomic_target` makes for ``NAME`` (glob).
TEMPORARY_GLOB = ".{name}.*.tmp"


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The writer creates the temporary file itself, so it gets the usual permissions
    (mkstemp would make it private to the user).  On an exception it is deleted.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(obj: Any, path: str | os.PathLike, *, default=None) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (folder created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, default=default))


def check_output_file(path: str | os.PathLike) -> Path:
    """Fail, before any work, unless a file can be written at ``path``: its folder exists,
    it is not a folder, and the folder lets this process create files (a probe file is
    made and removed)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"output folder does not exist: {path.parent}")
    if path.is_dir():
        raise InputError(f"output path is a folder: {path}")
    check_folder_writable(path.parent)
    return path


def check_folder_writable(folder: str | os.PathLike) -> None:
    """InputError unless this process can create files in ``folder`` (a probe file)."""
    probe = Path(folder) / f".gicnet-probe-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    try:
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as err:
        raise InputError(f"cannot write to {folder}: {one_line(err)}") from None


def remove_stale_temporaries(path: str | os.PathLike) -> None:
    """Delete temporary files a killed writer of ``path`` left beside it."""
    path = Path(path)
    for stale in path.parent.glob(TEMPORARY_GLOB.format(name=path.name)):
        stale.unlink(missing_ok=True)
