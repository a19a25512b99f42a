"""Shards of a distributed run and the ledger that makes it resumable.

A run over B initial conditions is cut into consecutive shards of at most ``shard_size``
trajectories (:func:`shard_bounds`); each shard is one unit of work for a Ray actor, and
its trajectories are written to their output files as soon as it comes back.  The
:class:`ShardLedger` (``OUT.shards.jsonl`` beside the output) records, after each shard
and flushed to disk, which shards are written, the SHA-256 and size of every file they wrote and
a summary of each trajectory's run (frames, backtracks, failure).  ``--resume`` skips the
shards whose files are still there, unchanged; a ledger of another run (other model,
initial conditions, settings or shard size) is refused.  The ledger is deleted when
every shard is written.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

from gicnet_runtime import jsonsafe
from gicnet_runtime.atomic import atomic_target
from gicnet_runtime.errors import InputError, one_line
from gicnet_runtime.unroll.segment import ROW_ALIGN

#: Suffix added to the output name for the ledger.
SUFFIX = ".shards.jsonl"
LEDGER_VERSION = 1
#: Largest shard by default: its frames (float32 positions and velocities) in bytes
#: (its files, extended XYZ text in particular, take about 3x that).
MAX_SHARD_FRAME_BYTES = 64 * 2**20
#: Default shard sizes are whole multiples of this many trajectories, the rows every graph
#: call of a run of several trajectories is padded to (gicnet_runtime.unroll.segment.
#: ROW_ALIGN): onnxruntime's CPU matrix kernels give a row the same float32 numbers in any
#: such batch (measured: the last rows of a batch of 5 or 7 differ from those of 8 in the
#: 7th digit), so shards reproduce a one-process run exactly.
SHARD_ALIGN = ROW_ALIGN
#: Largest shard by default, trajectories (onnxruntime batches beyond this gain little).
MAX_SHARD_TRAJECTORIES = 1024
#: Info keys kept in the ledger for a written trajectory (its per-segment lists are not).
SUMMARY_KEYS = ("engine", "models", "n_members", "tc_fs", "segment_fs", "dt_fs",
                "duration_fs", "energy_threshold_eV", "restore_energy", "reversal_share",
                "backtracks", "segments_over_threshold", "failure", "unphysical")
_HASH_BLOCK = 2**20


def ledger_path(out: str | os.PathLike) -> Path:
    """The ledger of output ``out``: ``OUT.shards.jsonl`` in the same folder."""
    out = Path(out)
    return out.with_name(out.name + SUFFIX)


def shard_bounds(n_trajectories: int, shard_size: int) -> list[tuple[int, int]]:
    """Consecutive (start, stop) ranges of at most ``shard_size`` covering 0 .. B - 1."""
    if n_trajectories < 1 or shard_size < 1:
        raise InputError(f"need at least one trajectory and a shard size >= 1, got "
                         f"{n_trajectories} and {shard_size}")
    return [(start, min(start + shard_size, n_trajectories))
            for start in range(0, n_trajectories, shard_size)]


def default_shard_size(n_trajectories: int, n_frames: int, n_atoms: int, workers: int) -> int:
    """Two shards per worker (one computing while the other's files are written), each
    holding at most ``MAX_SHARD_FRAME_BYTES`` of frames and ``MAX_SHARD_TRAJECTORIES``,
    rounded up to a multiple of ``SHARD_ALIGN`` where memory allows."""
    per_trajectory = n_frames * n_atoms * 6 * 4
    by_memory = max(1, MAX_SHARD_FRAME_BYTES // max(per_trajectory, 1))
    size = math.ceil(n_trajectories / (2 * max(workers, 1)))
    aligned = math.ceil(size / SHARD_ALIGN) * SHARD_ALIGN
    if aligned <= by_memory:
        size = aligned
    return int(max(1, min(size, by_memory, MAX_SHARD_TRAJECTORIES)))


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def summary(info: dict, n_frames: int) -> dict:
    """What the ledger keeps of a written trajectory's run: its frame count and the
    ``SUMMARY_KEYS`` of its info."""
    return {"n_frames": int(n_frames), **{k: info[k] for k in SUMMARY_KEYS if k in info}}


class ShardLedger:
    """The written shards of one run (see the module docstring), as JSON lines: a header
    (version, key, trajectories, shard size), then one line per written shard, appended
    and flushed to disk as each shard is written (so the ledger costs O(1) per shard; a
    line torn by a crash is ignored and its shard done again).

    Args:
        path: the ledger file.
        key: the run's fingerprint (model bytes, initial conditions, settings).
        n_trajectories, shard_size: the run's shards (:func:`shard_bounds`).
    """

    def __init__(self, path: str | os.PathLike, key: str, n_trajectories: int,
                 shard_size: int) -> None:
        self.path = Path(path)
        self.key = key
        self.header = {"version": LEDGER_VERSION, "key": key,
                       "n_trajectories": int(n_trajectories), "shard_size": int(shard_size)}
        self.bounds = shard_bounds(n_trajectories, shard_size)
        self.done: dict[int, list[dict]] = {}

    def start(self, resume: bool) -> set[int]:
        """Begin the run; with ``resume``, take over the shards an earlier run of the same
        key wrote whose files are unchanged, and return their indices."""
        self.done = {}
        if resume and self.path.is_file():
            self.done = {k: files for k, files in self._read().items()
                         if all(self._unchanged(f) for f in files)}
        lines = [self.header] + [{"shard": k, "files": v} for k, v in sorted(self.done.items())]
        try:
            with atomic_target(self.path) as tmp, open(tmp, "w") as fh:
                fh.writelines(json.dumps(line) + "\n" for line in lines)
        except OSError as err:
            raise InputError(f"cannot write shard ledger {self.path}: {one_line(err)}"
                             ) from None
        return set(self.done)

    def record(self, index: int, written: Sequence[tuple[Path, dict]]) -> None:
        """Shard ``index`` wrote these files, each with its run summary (:func:`summary`)."""
        files = [{"file": Path(p).name, "bytes": Path(p).stat().st_size,
                  "sha256": file_digest(p), "run": run} for p, run in written]
        self.done[int(index)] = files
        try:
            with open(self.path, "a") as fh:
                fh.write(json.dumps({"shard": int(index), "files": files}) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as err:
            raise InputError(f"cannot write shard ledger {self.path}: {one_line(err)}"
                             ) from None

    def runs(self, index: int) -> list[tuple[Path, dict]]:
        """(file, run summary) of each trajectory of written shard ``index``."""
        return [(self.path.with_name(f["file"]), f["run"]) for f in self.done[index]]

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def _read(self) -> dict[int, list[dict]]:
        """The written shards an existing ledger of this run lists (InputError for a
        ledger of another run or not a ledger at all)."""
        try:
            with open(self.path, "rb") as fh:
                lines = fh.read().splitlines()
        except OSError as err:
            raise InputError(f"cannot read shard ledger {self.path}: {one_line(err)}"
                             ) from None
        what = f"shard ledger {self.path}"
        header = jsonsafe.loads(lines[0], what=what) if lines else None
        if not isinstance(header, dict) or header.get("version") != LEDGER_VERSION:
            raise InputError(f"{self.path} is not a gicnet shard ledger (version "
                             f"{LEDGER_VERSION})")
        if header != self.header:
            raise InputError(f"{self.path} was made with other models, initial conditions, "
                             "settings or shard size; run without --resume to start again")
        done = {}
        for line in lines[1:]:
            try:
                entry = jsonsafe.loads(line, what=what)
                index, files = int(entry["shard"]), list(entry["files"])
            except (InputError, KeyError, TypeError, ValueError):
                continue  # torn by a crash, or edited: that shard is done again
            if 0 <= index < len(self.bounds) and all(isinstance(f, dict) for f in files):
                done[index] = files
        return done

    def _unchanged(self, entry: dict) -> bool:
        path = self.path.with_name(str(entry.get("file", "")))
        try:
            return (path.is_file() and path.stat().st_size == entry.get("bytes")
                    and file_digest(path) == entry.get("sha256"))
        except OSError:
            return False
