"""Small pieces every file format shares: optional imports, JSON of provenance, and the
exceptions third-party readers raise on malformed files."""

from __future__ import annotations

import importlib
import zipfile

import numpy as np

from gicnet_runtime.errors import InputError

#: Exceptions third-party readers raise on malformed files; gicnet turns them into InputError.
READ_FAILURES = (
    OSError, KeyError, ValueError, IndexError, TypeError, AttributeError, EOFError,
    zipfile.BadZipFile, UnicodeDecodeError, AssertionError, StopIteration,
    RuntimeError,  # h5py: "address of object past end of allocation" and the like
    MemoryError,  # backstop: io.limits refuses claims of enormous arrays before parsing
)


def jsonable(value):
    """``json.dumps`` fallback for numpy scalars and arrays in provenance."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise InputError(f"provenance value of type {type(value).__name__} is not JSON-serialisable")


def require(module: str):
    """Import an optional dependency of the ``io`` extra, or raise InputError saying so."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"{module} is needed for this file format: install gicnet[io]") from None
