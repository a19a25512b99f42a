"""Resumable unrolling: the state of `gicnet propagate` saved next to its output.

While trajectories are unrolled (:func:`gicnet_runtime.unroll.propagate.unroll`), a
:class:`PropagateCheckpoint` saves the unrolling state
(:class:`gicnet_runtime.unroll.state.UnrollState`) every ``every_s`` seconds: every
member's prediction of each trajectory's last segment and the attempts that backtracking
may still use, the per-segment choices, and the frame sink's mark
(:mod:`gicnet_runtime.unroll.sinks`).  With the frame spool of ``gicnet propagate`` the
frames stay in the spool file, so the checkpoint's size does not grow with the run's
length (a few numbers per segment aside); an in-memory sink puts its frames in it.
The file (``OUT.resume.npz``, :func:`checkpoint_path`) holds
numpy arrays and one JSON header, never pickled objects, and is written atomically, so a
run killed at any moment leaves either the previous or the new checkpoint.  It is read
as any other file: array headers checked against the file's size
(:func:`gicnet_runtime.io.limits.check_npz`), the header as bounded JSON
(:mod:`gicnet_runtime.jsonsafe`), and the sizes the header claims against the arrays
before the state is allocated.

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
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gicnet_runtime import jsonsafe
from gicnet_runtime.atomic import atomic_target, remove_stale_temporaries
from gicnet_runtime.errors import InputError, one_line
from gicnet_runtime.io.limits import check_npz
from gicnet_runtime.io.support import READ_FAILURES
from gicnet_runtime.unroll.sinks import FrameSink
from gicnet_runtime.unroll.state import SegmentPrediction, UnrollState

#: Suffix added to the output name for the checkpoint file.
SUFFIX = ".resume.npz"
#: Version of the checkpoint layout (3: the state without frames, with the sink's mark).
CHECKPOINT_VERSION = 3
#: Default time between checkpoints, s.
DEFAULT_EVERY_S = 60.0
_HASH_BLOCK_BYTES = 2**20
#: Arrays of the initial conditions and their conserved targets (UnrollState arguments).
_INITIAL = ("positions0", "velocities0", "momentum0", "angular0", "com0")
#: Arrays of the UnrollState's progress (filled in after it is rebuilt from the initial
#: conditions and ``frame_start``), and of each saved SegmentPrediction.
_PROGRESS = ("segment", "member", "error_eV", "over_threshold", "backtracks", "last_rank")
_STATE = _INITIAL + ("frame_start",) + _PROGRESS
_PREDICTION = ("rows", "positions", "velocities", "potential_eV", "end_positions",
               "end_velocities", "errors_eV")


def checkpoint_path(out: str | os.PathLike) -> Path:
    """The checkpoint file for output ``out``: ``OUT.resume.npz`` in the same folder."""
    out = Path(out)
    return out.with_name(out.name + SUFFIX)


def fingerprint(model_paths: Sequence[str | os.PathLike], positions: np.ndarray,
                velocities: np.ndarray, duration_fs: float, dt_fs: float,
                energy_threshold_eV: float, restore_energy: bool, segment_fs: float,
                unphysical: str = "error") -> str:
    """SHA-256 of everything that determines an unrolled run: model bytes, initial
    positions (B, N, 3) Å and velocities (B, N, 3) Å/fs, and the settings (``unphysical``:
    whether physical-sanity violations fail segments, :mod:`gicnet_runtime.core.sanity`)."""
    digest = hashlib.sha256()
    for path in model_paths:
        with open(path, "rb") as fh:
            while block := fh.read(_HASH_BLOCK_BYTES):
                digest.update(block)
    for array in (positions, velocities):
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    digest.update(repr((float(duration_fs), float(dt_fs), float(energy_threshold_eV),
                        bool(restore_energy), float(segment_fs), str(unphysical))).encode())
    return digest.hexdigest()


class PropagateCheckpoint:
    """Periodic, atomic checkpoints of an unrolling run (see the module docstring).

    Use: pass it to :meth:`gicnet_runtime.core.model.Model.propagate` (``checkpoint=``); it is
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

    def start(self, key: str) -> UnrollState | None:
        """Begin a run identified by ``key`` (:func:`fingerprint`); the saved state when
        resuming from an existing file, else None."""
        self._fingerprint = key
        self._last_save = time.monotonic()
        if not self.resume or not self.path.is_file():
            return None
        state = load_state(self.path, key)
        self.resumed_segments = int(state.segment.sum())
        return state

    def save(self, state: UnrollState, sink: FrameSink) -> None:
        """Save the state and ``sink``'s mark now (an interrupted run's last save)."""
        save_state(self.path, state, self._fingerprint, sink)
        self._last_save = time.monotonic()

    def __call__(self, state: UnrollState, sink: FrameSink) -> None:
        """Save the state and ``sink``'s mark when ``every_s`` has passed since the last
        save."""
        if time.monotonic() - self._last_save >= self.every_s:
            save_state(self.path, state, self._fingerprint, sink)
            self._last_save = time.monotonic()

    def remove(self) -> None:
        """Delete the checkpoint file and any temporary copy that a killed run left
        half-written beside it (the run's results are safe)."""
        self.path.unlink(missing_ok=True)
        remove_stale_temporaries(self.path)


def save_state(path: str | os.PathLike, state: UnrollState, key: str, sink: FrameSink) -> None:
    """Write the unrolling state ``state`` and ``sink``'s mark atomically to ``path``
    (npz, no pickle)."""
    path = Path(path)
    sink_header, sink_arrays = sink.mark()
    out = {name: getattr(state, name) for name in _STATE}
    out.update({f"sink_{name}": value for name, value in sink_arrays.items()})
    out.update({f"last_{name}": getattr(state.last, name) for name in _PREDICTION
                if getattr(state.last, name) is not None})
    attempts = []
    for b, tried in sorted(state.attempts.items()):
        for rank, prediction in tried:
            k = len(attempts)
            attempts.append({"trajectory": b, "rank": rank, "failure": prediction.failures[0]})
            out.update({f"attempt{k}_{name}": getattr(prediction, name) for name in _PREDICTION
                        if getattr(prediction, name) is not None})
    header = {"version": CHECKPOINT_VERSION, "fingerprint": key, "failure": state.failure,
              "n_members": int(state.last.errors_eV.shape[0]),
              "has_energy": state.has_energy, "attempts": attempts, "sink": sink_header}
    header["digest"] = content_digest(header, out)
    out["header"] = np.array(json.dumps(header))
    try:
        with atomic_target(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **out)
    except OSError as err:
        raise InputError(f"cannot write checkpoint {path}: {err.strerror or err}") from None


def load_state(path: str | os.PathLike, key: str) -> UnrollState:
    """The unrolling state saved in ``path``; InputError unless it is a valid checkpoint
    of the run identified by ``key``."""
    path = Path(path)
    try:
        check_npz(path)
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in data.files}
        header = jsonsafe.loads(str(arrays.pop("header")), what="checkpoint header")
        return _unpack(header, arrays, key)
    except InputError as err:
        raise InputError(f"{path}: {one_line(err)}") from None
    except READ_FAILURES as err:
        text = one_line(err)
        raise InputError(f"cannot read propagate checkpoint {path}: {text}") from None


def content_digest(header: dict, arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of a checkpoint's header (its ``digest`` left out) and of every array's
    name, dtype, shape and bytes: a checkpoint changed after it was written (a truncated
    or edited array, a hand-edited header) no longer matches it."""
    digest = hashlib.sha256(json.dumps({k: v for k, v in header.items() if k != "digest"},
                                       sort_keys=True).encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _unpack(header: dict, arrays: dict[str, np.ndarray], key: str) -> UnrollState:
    if header.get("version") != CHECKPOINT_VERSION:
        raise InputError(f"checkpoint version {header.get('version')!r} is not "
                         f"{CHECKPOINT_VERSION}")
    if header.get("digest") != content_digest(header, arrays):
        raise InputError("the checkpoint was changed after it was written (its content "
                         "does not match its digest); run without --resume to start again")
    if header.get("fingerprint") != key:
        raise InputError("the checkpoint was made with other models, initial conditions or "
                         "settings; run without --resume to start again")
    start = arrays["frame_start"]
    if start.ndim != 1 or start.size < 2 or arrays["positions0"].shape[0] == 0:
        raise ValueError("checkpoint holds no trajectories or segments")
    _check_claims(header, arrays)
    state = UnrollState(*(arrays[name] for name in _INITIAL), np.diff(start),
                        int(header["n_members"]), bool(header["has_energy"]))
    for name in _PROGRESS:
        _fill(getattr(state, name), arrays[name], name)
    for name in _PREDICTION:
        if getattr(state.last, name) is not None:
            _fill(getattr(state.last, name), arrays[f"last_{name}"], f"last_{name}")
    state.sink_mark = (dict(header["sink"]), {name[5:]: value for name, value in arrays.items()
                                              if name.startswith("sink_")})
    state.failure = [None if f is None else str(f) for f in header["failure"]]
    state.failed = np.array([f is not None for f in state.failure], dtype=bool)
    if len(state.failure) != state.segment.size:
        raise ValueError("checkpoint failures do not match its trajectories")
    for k, attempt in enumerate(header["attempts"]):
        b = int(attempt["trajectory"])
        fields = {name: arrays.get(f"attempt{k}_{name}") for name in _PREDICTION}
        prediction = SegmentPrediction(**fields, failures=[attempt["failure"]])
        if prediction.rows.tolist() != [b]:
            raise ValueError(f"checkpoint attempt {k} belongs to another trajectory")
        state.attempts.setdefault(b, []).append((int(attempt["rank"]), prediction))
    return state


def _check_claims(header: dict, arrays: dict[str, np.ndarray]) -> None:
    """ValueError unless the member count and segment width that the header and
    ``frame_start`` claim are those of the saved predictions: UnrollState allocates
    (members, B, width, N, 3) arrays from them."""
    counts = np.diff(arrays["frame_start"])
    if counts.min() < 0:
        raise ValueError("checkpoint frame_start is not increasing")
    n_batch, n_atoms = arrays["positions0"].shape[:2]
    claimed = (int(header["n_members"]), n_batch, int(counts.max()), n_atoms, 3)
    saved = arrays["last_positions"].shape
    if claimed != saved:
        raise ValueError(f"checkpoint claims predictions of shape {claimed}, but holds {saved}")


def _fill(target: np.ndarray, saved: np.ndarray, name: str) -> None:
    if saved.shape != target.shape:
        raise ValueError(f"checkpoint array {name!r} has shape {saved.shape}, expected "
                         f"{target.shape}")
    target[...] = saved
