"""Trajectory paths from the command line: files, folders and quoted glob patterns."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from gicnet_runtime.errors import InputError
from gicnet_runtime.io.formats import SUFFIX_FORMATS


def trajectory_paths(values: Sequence[str | os.PathLike]) -> list[Path]:
    """Files named by ``values``: files as given, folders as their trajectory files (sorted),
    and glob patterns (for quoted ``--reference 'heldout/*.h5'``) expanded."""
    paths: list[Path] = []
    for value in map(str, values):
        if Path(value).is_dir():
            found = sorted(p for p in Path(value).iterdir() if p.suffix.lower() in SUFFIX_FORMATS)
        elif glob.has_magic(value):
            found = [Path(p) for p in sorted(glob.glob(value))]
        else:
            found = [Path(value)]
        if not found:
            raise InputError(f"no trajectory files in {value}")
        paths += found
    return paths
