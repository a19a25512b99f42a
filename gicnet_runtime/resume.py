"""Resumable unrolling: the state of `gicnet propagate` saved next to its output.

While trajectories are unrolled (:func:`gicnet_runtime.propagate.propagate`), a
:class:`PropagateCheckpoint` saves the state of every trajectory every ``every_s``
seconds: the accepted segments, the attempts and rankings that backtracking may still
change, and the counters.  The file (``OUT.resume.npz``, :func:`checkpoint_path`) holds
numpy arrays and one JSON header, never pickled objects, and is written atomically, so a
run killed at any moment leaves either the previous or the new checkpoint.

Unrolling is deterministic given its state, so a run continued from a checkpoint
(``resume=True``) ends with exactly the trajectories of an uninterrupted run.  The
checkpoint records a fingerprint of the model files, the initial conditions and the
settings; continuing with anything different is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gicnet_runtime.ensemble import Ranking
from gicnet_runtime.errors import InputError
from gicnet_runtime.trajio import atomic_target
from gicnet_runtime.unroll import Candidate, Unroll

#: Suffix added to the output name for the checkpoint file.
SUFFIX = ".resume.npz"
#: Version of the checkpoint layout.
CHECKPOINT_VERSION = 1
#: Default time between checkpoints, s.
DEFAULT_EVERY_S = 60.0
_HASH_BLOCK_BYTES = 2**20
#: Per-candidate arrays, concatenated over all candidates along axis 0.
_ARRAYS = ("times_fs", "positions", "velocities", "potential_eV", "end_positions",
           "end_velocities", "errors_eV", "members")
#: Per-trajectory arrays of the initial condition and its conserved targets.
_INITIAL = ("positions0", "velocities0", "momentum0", "angular0", "com0")


def checkpoint_path(out: str | os.PathLike) -> Path:
    """The checkpoint file for output ``out``: ``OUT.resume.npz`` in the same folder."""
    out = Path(out)
    return out.with_name(out.name + SUFFIX)


def fingerprint(model_paths: Sequence[str | os.PathLike], positions: np.ndarray,
                velocities: np.ndarray, duration_fs: float, dt_fs: float,
                energy_threshold_eV: float, restore_energy: bool, segment_fs: float) -> str:
    """SHA-256 of everything that determines an unrolled run: model bytes, initial
    positions (B, N, 3) Å and velocities (B, N, 3) Å/fs, and the settings."""
    digest = hashlib.sha256()
    for path in model_paths:
        with open(path, "rb") as fh:
            while block := fh.read(_HASH_BLOCK_BYTES):
                digest.update(block)
    for array in (positions, velocities):
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    digest.update(repr((float(duration_fs), float(dt_fs), float(energy_threshold_eV),
                        bool(restore_energy), float(segment_fs))).encode())
    return digest.hexdigest()


class PropagateCheckpoint:
    """Periodic, atomic checkpoints of an unrolling run (see the module docstring).

    Use: pass it to :meth:`gicnet_runtime.model.Model.propagate` (``checkpoint=``); it is
    then called after every batched step.  Delete the file with :meth:`remove` once the
    results are safely written.

    Attributes:
        path: the checkpoint file.
        every_s: time between saves, s (0: after every step).
        resume: whether :meth:`start` continues from an existing file.
        resumed_segments: segments taken from the file by :meth:`start` (0: a fresh start).
    """

    def __init__(self, path: str | os.PathLike, *, every_s: float = DEFAULT_EVERY_S,
                 resume: bool = False) -> None:
        if not every_s >= 0:
            raise InputError(f"checkpoint interval must be >= 0 s, got {every_s}")
        self.path = Path(path)
        self.every_s = float(every_s)
        self.resume = resume
        self.resumed_segments = 0
        self._fingerprint = ""
        self._last_save = time.monotonic()

    def start(self, key: str) -> list[Unroll] | None:
        """Begin a run identified by ``key`` (:func:`fingerprint`); the saved state when
        resuming from an existing file, else None."""
        self._fingerprint = key
        self._last_save = time.monotonic()
        if not self.resume or not self.path.is_file():
            return None
        unrolls = load_state(self.path, key)
        self.resumed_segments = sum(u.segment for u in unrolls)
        return unrolls

    def __call__(self, unrolls: Sequence[Unroll]) -> None:
        """Save when ``every_s`` has passed since the last save."""
        if time.monotonic() - self._last_save >= self.every_s:
            save_state(self.path, unrolls, self._fingerprint)
            self._last_save = time.monotonic()

    def remove(self) -> None:
        """Delete the checkpoint file and any temporary copy that a killed run left
        half-written beside it (the run's results are safe)."""
        self.path.unlink(missing_ok=True)
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)


def save_state(path: str | os.PathLike, unrolls: Sequence[Unroll], key: str) -> None:
    """Write the unrolling state of ``unrolls`` atomically to ``path`` (npz, no pickle)."""
    path = Path(path)
    candidates: list[Candidate] = []
    header = {"version": CHECKPOINT_VERSION, "fingerprint": key, "unrolls": [],
              "candidates": []}
    for u in unrolls:
        accepted = list(range(len(candidates), len(candidates) + len(u.accepted)))
        candidates += u.accepted
        attempts = []
        for rank, c in u.attempts:
            attempts.append([int(rank), len(candidates)])
            candidates.append(c)
        header["unrolls"].append({"segment": u.segment, "backtracks": u.backtracks,
                                  "over_threshold": [int(s) for s in u.over_threshold],
                                  "failure": u.failure, "accepted": accepted,
                                  "attempts": attempts})
    arrays = {name: [] for name in _ARRAYS}
    for c in candidates:
        header["candidates"].append({"members": int(c.positions.shape[0]),
                                     "frames": int(c.times_fs.shape[0]),
                                     "rank": int(c.ranking.rank), "failure": c.failure,
                                     "potential": c.potential_eV is not None})
        _append(arrays, c)
    n_atoms = unrolls[0].positions0.shape[0]
    out = {name: _joined(parts, name, n_atoms) for name, parts in arrays.items()}
    for name in _INITIAL:
        out[name] = np.stack([getattr(u, name) for u in unrolls])
    out["header"] = np.array(json.dumps(header))
    try:
        with atomic_target(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **out)
    except OSError as err:
        raise InputError(f"cannot write checkpoint {path}: {err.strerror or err}") from None


def _append(arrays: dict[str, list], c: Candidate) -> None:
    m, f = c.positions.shape[:2]
    arrays["times_fs"].append(c.times_fs)
    arrays["positions"].append(c.positions.reshape(m * f, -1, 3))
    arrays["velocities"].append(c.velocities.reshape(m * f, -1, 3))
    if c.potential_eV is not None:
        arrays["potential_eV"].append(c.potential_eV.reshape(m * f))
    arrays["end_positions"].append(c.end_positions)
    arrays["end_velocities"].append(c.end_velocities)
    arrays["errors_eV"].append(c.ranking.errors_eV)
    arrays["members"].append(np.asarray(c.members, dtype=np.int64))


def _joined(parts: list[np.ndarray], name: str, n_atoms: int) -> np.ndarray:
    if parts:
        return np.concatenate(parts)
    if name in ("positions", "velocities", "end_positions", "end_velocities"):
        return np.zeros((0, n_atoms, 3))
    return np.zeros(0, dtype=np.int64 if name == "members" else np.float64)


def load_state(path: str | os.PathLike, key: str) -> list[Unroll]:
    """The unrolling state saved in ``path``; InputError unless it is a valid checkpoint
    of the run identified by ``key``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in data.files}
        header = json.loads(str(arrays.pop("header")))
        return _unpack(header, arrays, key)
    except InputError as err:
        raise InputError(f"{path}: {err}") from None
    except (OSError, KeyError, ValueError, TypeError, IndexError, EOFError,
            zipfile.BadZipFile, AttributeError) as err:
        text = " ".join(str(err).split()) or type(err).__name__
        raise InputError(f"cannot read propagate checkpoint {path}: {text}") from None


def _unpack(header: dict, arrays: dict[str, np.ndarray], key: str) -> list[Unroll]:
    if header.get("version") != CHECKPOINT_VERSION:
        raise InputError(f"checkpoint version {header.get('version')!r} is not "
                         f"{CHECKPOINT_VERSION}")
    if header.get("fingerprint") != key:
        raise InputError("the checkpoint was made with other models, initial conditions or "
                         "settings; run without --resume to start again")
    candidates = _candidates(header["candidates"], arrays)
    unrolls = []
    for i, saved in enumerate(header["unrolls"]):
        u = Unroll(*(arrays[name][i] for name in _INITIAL))
        u.segment, u.backtracks = int(saved["segment"]), int(saved["backtracks"])
        u.over_threshold = [int(s) for s in saved["over_threshold"]]
        u.failure = saved["failure"]
        u.accepted = [candidates[k] for k in saved["accepted"]]
        u.attempts = [(int(rank), candidates[k]) for rank, k in saved["attempts"]]
        unrolls.append(u)
    if not unrolls:
        raise InputError("checkpoint holds no trajectories")
    return unrolls


def _candidates(meta: list[dict], arrays: dict[str, np.ndarray]) -> list[Candidate]:
    offsets = dict.fromkeys(_ARRAYS, 0)

    def take(name: str, count: int) -> np.ndarray:
        start = offsets[name]
        offsets[name] += count
        if offsets[name] > arrays[name].shape[0]:
            raise ValueError(f"checkpoint array {name!r} is too short")
        return arrays[name][start:start + count]

    out = []
    for c in meta:
        m, f = int(c["members"]), int(c["frames"])
        n_atoms = arrays["positions"].shape[1]
        ranking = Ranking(take("errors_eV", m))
        ranking.rank = int(c["rank"])
        potential = take("potential_eV", m * f).reshape(m, f) if c["potential"] else None
        out.append(Candidate(
            times_fs=take("times_fs", f),
            positions=take("positions", m * f).reshape(m, f, n_atoms, 3),
            velocities=take("velocities", m * f).reshape(m, f, n_atoms, 3),
            potential_eV=potential, end_positions=take("end_positions", m),
            end_velocities=take("end_velocities", m), ranking=ranking,
            members=take("members", m), failure=c["failure"]))
    return out
