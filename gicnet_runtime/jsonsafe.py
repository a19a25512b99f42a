"""JSON from files, parsed only within bounds: the one JSON reader for untrusted text.

Python's :func:`json.loads` recurses once per nesting level (``[[[[...`` of a few kilobytes
ends in ``RecursionError``) and builds tens of bytes of objects per byte of text.  Every
reader of JSON that comes from a file (provenance in trajectory files, checkpoint headers,
model metadata, run folders) parses it with :func:`loads` (text) or :func:`read` (a file),
which refuse text longer than ``max_bytes`` and nesting deeper than ``max_depth`` with one
line of :class:`~gicnet_runtime.errors.InputError` *before* :func:`json.loads` sees it.
The depth is measured without recursion, in time linear in the text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from gicnet_runtime.errors import InputError, one_line

#: Deepest nesting of arrays and objects accepted.  gicnet's own documents nest at most
#: ~6 levels; Python's recursion limit (1000) is far away.
MAX_DEPTH = 64
#: Longest JSON text accepted, bytes (16 MiB; a str counts its characters).  gicnet's
#: largest documents (a propagate checkpoint header of 10^5 trajectories) stay below ~10 MB.
MAX_BYTES = 16 * 2**20
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
#: Change of nesting level per byte: +1 for [ {, -1 for ] }, 0 otherwise.
_STEP = np.zeros(256, dtype=np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1
#: Bytes measured per block, so that measuring costs O(block) memory, not O(text).
_BLOCK_BYTES = 2**20


def depth(text: str | bytes) -> int:
    """Nesting depth of arrays and objects in JSON ``text`` (0 for a scalar), brackets
    inside strings not counted.  Exact for valid JSON; for invalid JSON at least the depth
    :func:`json.loads` reaches before it fails (the two split the text into strings alike
    up to the first error).  Vectorised over blocks: linear time, no recursion."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    # Carried from block to block: nesting level, inside a string, backslashes run parity.
    level = deepest = 0
    inside = odd_run = False
    for start in range(0, len(data), _BLOCK_BYTES):
        block = np.frombuffer(data, np.uint8, min(_BLOCK_BYTES, len(data) - start), start)
        escaped, odd_run = _escaped(block, odd_run)
        quotes = (block == _QUOTE) & ~escaped
        in_string = inside ^ (np.cumsum(quotes, dtype=np.int64) % 2 == 1)
        levels = level + np.cumsum(np.where(in_string, 0, _STEP[block]), dtype=np.int64)
        deepest, level, inside = max(deepest, int(levels.max())), int(levels[-1]), bool(
            in_string[-1])
    return deepest


def _escaped(block: np.ndarray, odd_run: bool) -> tuple[np.ndarray, bool]:
    """Which bytes of ``block`` follow an odd run of backslashes (``odd_run``: the block
    before ended in one), and whether ``block`` ends in one."""
    index = np.arange(block.size)
    slash = block == _BACKSLASH
    last_other = np.maximum.accumulate(np.where(slash, -1, index))
    run = index - last_other + np.where(last_other < 0, int(odd_run), 0)  # 0 on non-slashes
    odd = run % 2 == 1
    return np.concatenate([[odd_run], odd[:-1]]), bool(odd[-1])


def check(text: str | bytes, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES,
          what: str = "JSON text") -> None:
    """Raise InputError (one line, naming ``what``) unless ``text`` is at most
    ``max_bytes`` long and nests at most ``max_depth`` levels deep."""
    if not isinstance(text, (str, bytes, bytearray)):
        raise InputError(f"{what} is not text (got {type(text).__name__})")
    if len(text) > max_bytes:
        raise InputError(f"{what} is {len(text)} bytes long, more than the limit of "
                         f"{max_bytes} bytes")
    brackets = ("[", "{") if isinstance(text, str) else (b"[", b"{")
    if sum(text.count(b) for b in brackets) <= max_depth:
        return  # fewer openings than the limit: no need to measure
    levels = depth(text)
    if levels > max_depth:
        raise InputError(f"{what} nests arrays and objects {levels} levels deep, more than "
                         f"the limit of {max_depth}")


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES,
          what: str = "JSON text") -> Any:
    """:func:`json.loads` of ``text`` (str, or bytes in UTF-8/16/32) after :func:`check`;
    malformed JSON is an InputError too.  ``what`` names the text in messages."""
    check(text, max_depth=max_depth, max_bytes=max_bytes, what=what)
    if not isinstance(text, str):
        try:
            text = bytes(text).decode(json.detect_encoding(text))
        except UnicodeDecodeError as err:
            raise InputError(f"{what} is not Unicode text: {one_line(err)}") from None
    try:
        return json.loads(text)
    except ValueError as err:  # json.JSONDecodeError, and int() of a 5000-digit number
        raise InputError(f"{what} is not valid JSON: {one_line(err)}") from None


def read(path: str | os.PathLike, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES,
         what: str | None = None) -> Any:
    """The JSON document in file ``path`` (see :func:`loads`); its size is checked before
    it is read.  ``what`` names it in messages (default: the path)."""
    path = Path(path)
    what = str(path) if what is None else what
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:  # at most one byte too many, even from a device
            data = fh.read(max_bytes + 1) if size <= max_bytes else b""
    except OSError as err:
        raise InputError(f"cannot read {what}: {err.strerror or one_line(err)}") from None
    if size > max_bytes or len(data) > max_bytes:
        raise InputError(f"{what} is more than the limit of {max_bytes} bytes long")
    return loads(data, max_depth=max_depth, max_bytes=max_bytes, what=what)
