"""Exported GICnet models: loading, one-segment prediction and long trajectories.

A :class:`Model` is one exported network or an ensemble of members that share one
description (same atoms, masses, tc and outputs).  :func:`load_model` opens a file (a
single network or an ensemble file), a folder of ``*.onnx`` files or a list of files,
whose members together form the ensemble; with no path it opens the shipped model
folder.  A folder of member files and the ensemble file of the same members give the
same results.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gicnet_runtime.core import sanity
from gicnet_runtime.core.contract import ENERGY_T, POSITIONS_T, VELOCITIES_T
from gicnet_runtime.core.description import ModelDescription
from gicnet_runtime.core.ensemble import (
    ENERGY_THRESHOLD_EV,
    reference_energy_eV,
    total_energy_error_eV,
)
from gicnet_runtime.core.icdef import ICDefinition, check_geometry
from gicnet_runtime.core.session import MAX_CHUNK_BYTES, Session
from gicnet_runtime.core.shipped import DEFAULT_MODEL, shipped_model, shipped_names
from gicnet_runtime.core.timegrid import TIME_RTOL, segment_count
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError, ModelError

if TYPE_CHECKING:  # the unrolling layer and ASE sit above this one; imported when used
    from ase import Atoms

    from gicnet_runtime.unroll.checkpoint import PropagateCheckpoint

#: How an ensemble answers :meth:`Model.predict`.
ENSEMBLE_MODES = ("mean", "select")
#: The shipped model used when none is given (the installed package data, else the source
#: tree's exported/ethanol): every *.onnx in this folder is a member of the ensemble.
DEFAULT_MODEL_DIR = shipped_model(DEFAULT_MODEL)


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Frames predicted within one segment.  A leading B axis is absent when the initial
    condition was given without one.

    Attributes:
        positions: (B, K, N, 3) Å.
        velocities: (B, K, N, 3) Å/fs.
        potential_energy: (B, K) eV, or None for a model without energy.
        member: (B,) int, the ensemble member used for each initial condition; -1 where
            the frames are the mean of all members.
        spread_A: (B, K) Å, for the mean of an ensemble: the root-mean-square distance of
            the members' atom positions from the mean (an uncertainty estimate); else None.
    """

    positions: np.ndarray
    velocities: np.ndarray
    potential_energy: np.ndarray | None
    member: np.ndarray
    spread_A: np.ndarray | None = None


class Model:
    """An exported GICnet model: one network or an ensemble of members.

    Attributes:
        sessions: one session per model file; a file holds one member or several (an
            ensemble file); members are numbered across the files in order.
        description: the shared :class:`ModelDescription` (the first file's).
    """

    def __init__(self, sessions: Sequence[Session]) -> None:
        if not sessions:
            raise ModelError("a model needs at least one member")
        self.sessions = tuple(sessions)
        self.description: ModelDescription = sessions[0].description
        for other in self.sessions[1:]:
            _check_same(self.sessions[0], other)

    @property
    def n_members(self) -> int:
        """Number of ensemble members (1 for a single network)."""
        return sum(s.n_members for s in self.sessions)

    @property
    def paths(self) -> list[Path]:
        return [s.path for s in self.sessions]

    @property
    def providers(self) -> list[str]:
        """The onnxruntime providers in use, in priority order (the first file's)."""
        return self.sessions[0].providers

    def run(self, positions: np.ndarray, velocities: np.ndarray,
            times_fs: np.ndarray) -> dict[str, np.ndarray]:
        """Every member's raw graph output on validated inputs (positions (B, N, 3) Å,
        velocities (B, N, 3) Å/fs, times (B, K) fs): ``positions_t``, ``velocities_t``
        (M, B, K, N, 3) and ``energy_t`` (M, B, K), float32, members in order."""
        outs = [s.run(positions, velocities, times_fs) for s in self.sessions]
        if len(outs) == 1:
            return outs[0]
        return {name: np.concatenate([o[name] for o in outs]) for name in outs[0]}

    def predict(self, positions: np.ndarray | Atoms | Sequence[Atoms],
                velocities: np.ndarray | None = None, times_fs: np.ndarray | None = None, *,
                ensemble: str = "mean", check: bool = True) -> Prediction:
        """Positions and velocities at the given times of one segment.

        Args:
            positions: (B, N, 3) or (N, 3) Å, the initial positions; or one ``ase.Atoms``
                (as (N, 3)) or a list of B (:meth:`_state`): ``predict(atoms, times_fs=t)``.
            velocities: (B, N, 3) or (N, 3) Å/fs, the initial velocities; None for Atoms.
            times_fs: (K,) or (B, K) fs, any order, each within [0, tc]; required.
            ensemble: how an ensemble answers: "mean", the mean of all members' positions,
                velocities and energies (the velocities stay the exact time derivative of
                the positions), with their spread; or "select", per initial condition the
                member with the smallest total-energy error over the given times (the
                choice the unrolling makes per segment).  A single model ignores it.
            check: refuse (ModelError) frames that break a physical-sanity check against
                their initial condition (:mod:`gicnet_runtime.core.sanity`); False for
                made-up inputs (analysis) or to report violations yourself.

        Returns:
            The frames in the order of ``times_fs`` (the network's raw output, lab frame).
        """
        if times_fs is None:
            raise InputError("predict needs times_fs")
        if ensemble not in ENSEMBLE_MODES:
            raise InputError(f"ensemble must be one of {', '.join(ENSEMBLE_MODES)}, "
                             f"got {ensemble!r}")
        pos, vel, batched = self._state(positions, velocities)
        times = self._times(times_fs, pos.shape[0])
        select = ensemble == "select" and self.n_members > 1 and self.description.has_energy
        if select:
            times = np.concatenate([np.zeros((pos.shape[0], 1)), times], axis=1)
        stacked = {name: value.astype(np.float64)
                   for name, value in self.run(pos, vel, times).items()}
        member, picked, spread = self._answer(stacked, vel, select)
        times = times[:, 1:] if select else times
        _check_finite(picked, times)
        if check:
            sanity.refuse(sanity.prediction_violations(
                self.description, pos, vel, picked[POSITIONS_T], picked[VELOCITIES_T], times))
        if not batched:
            picked = {k: v[0] for k, v in picked.items()}
            spread = None if spread is None else spread[0]
        return Prediction(picked[POSITIONS_T], picked[VELOCITIES_T], picked.get(ENERGY_T),
                          member, spread)

    def _answer(self, stacked: dict[str, np.ndarray], velocities0: np.ndarray, select: bool
                ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
        """From every member's outputs (M, B, K, ...): (B,) member used (-1: the mean), the
        outputs (B, K, ...), the mean's spread (B, K) Å or None (``select``: t = 0 dropped)."""
        n_batch = velocities0.shape[0]
        if select:
            member = _best_members(stacked, velocities0, self.description)
            rows = np.arange(n_batch)
            return member, {name: value[member, rows, 1:] for name, value in stacked.items()}, None
        if self.n_members > 1:
            return np.full(n_batch, -1, dtype=np.int64), *_member_mean(stacked)
        return (np.zeros(n_batch, dtype=np.int64),
                {name: value[0] for name, value in stacked.items()}, None)

    def propagate(self, positions: np.ndarray | Atoms | Sequence[Atoms],
                  velocities: np.ndarray | None = None, duration_fs: float | None = None,
                  dt_fs: float | None = None, *,
                  energy_threshold_eV: float = ENERGY_THRESHOLD_EV,
                  progress: Callable[[int], None] | None = None,
                  checkpoint: PropagateCheckpoint | None = None,
                  restore_energy: bool | None = None,
                  segment_fs: float | None = None, unphysical: str = "error") -> list[Trajectory]:
        """Long trajectories from B initial conditions, unrolled together in segments.

        Args:
            positions: (B, N, 3) or (N, 3) Å; or one ``ase.Atoms`` or a list of B, whose
                velocities are used (see :meth:`_state`).
            velocities: (B, N, 3) or (N, 3) Å/fs; None for Atoms.
            duration_fs: trajectory length, fs (required; by keyword after Atoms).
            dt_fs: output frame spacing, fs (any value; frames at 0, dt, ... <= duration;
                required).
            energy_threshold_eV: a segment whose best member's total-energy error exceeds
                this makes the runtime step back a segment and try the next member, eV.
            progress: called with the number of segments just finished (of
                B · :meth:`segment_count` in all).
            checkpoint: saves the unrolling state periodically and, when its ``resume`` is
                set, continues from the state it saved (:mod:`gicnet_runtime.unroll.checkpoint`).
            restore_energy: start every segment with the trajectory's initial total energy
                (:func:`gicnet_runtime.unroll.propagate.propagate`); None: when the model has
                energy.
            segment_fs: length of the unrolled segments, fs, at most tc (None: the model's
                ``default_segment_fs``).
            unphysical: "error" or "warn" (:func:`gicnet_runtime.unroll.propagate.unroll`).

        Returns:
            One :class:`Trajectory` per initial condition; see
            :func:`gicnet_runtime.unroll.propagate.propagate` for what ``info`` records.
        """
        from gicnet_runtime.unroll import propagate as _propagate

        if duration_fs is None or dt_fs is None:
            raise InputError("propagate needs duration_fs and dt_fs")
        pos, vel, _ = self._state(positions, velocities)
        restore, segment = _propagate.unroll_settings(self.description, restore_energy,
                                                      segment_fs)
        state = None
        if checkpoint is not None:
            state = checkpoint.start(self.run_key(pos, vel, duration_fs, dt_fs, restore,
                                                  segment, energy_threshold_eV, unphysical))
        return _propagate.propagate(self, pos, vel, duration_fs, dt_fs,
                                    energy_threshold_eV=energy_threshold_eV, progress=progress,
                                    state=state, on_step=checkpoint, restore_energy=restore,
                                    segment_fs=segment, unphysical=unphysical)

    def segment_count(self, duration_fs: float, dt_fs: float,
                      segment_fs: float | None = None) -> int:
        """Segments needed for ``duration_fs`` with frames every ``dt_fs`` (segments of
        ``segment_fs``; None: the model's ``default_segment_fs``), counted by
        :func:`gicnet_runtime.core.timegrid.segment_count` without making the frames."""
        from gicnet_runtime.unroll import propagate as _propagate

        _, segment = _propagate.unroll_settings(self.description, False, segment_fs)
        return int(segment_count(duration_fs, dt_fs, segment))

    def run_key(self, positions: np.ndarray, velocities: np.ndarray, duration_fs: float,
                dt_fs: float, restore_energy: bool, segment_fs: float,
                energy_threshold_eV: float = ENERGY_THRESHOLD_EV,
                unphysical: str = "error") -> str:
        """The fingerprint a checkpoint of this unrolling run carries: the model files'
        bytes, the validated initial conditions and the settings
        (:func:`gicnet_runtime.unroll.checkpoint.fingerprint`)."""
        from gicnet_runtime.unroll.checkpoint import fingerprint

        return fingerprint(self.paths, positions, velocities, duration_fs, dt_fs,
                           energy_threshold_eV, restore_energy, segment_fs, unphysical)

    def validated_state(self, positions, velocities) -> tuple[np.ndarray, np.ndarray, bool]:
        """Positions and velocities (arrays or ase.Atoms) checked against the model:
        (B, N, 3) float64 Å and Å/fs, and whether a B axis was given."""
        return self._state(positions, velocities)

    def _state(self, positions, velocities) -> tuple[np.ndarray, np.ndarray, bool]:
        """Validated (B, N, 3) float64 positions and velocities, and whether B was given.

        ``positions`` may be one ``ase.Atoms`` (no B axis) or a sequence of them (anything
        with ``get_positions`` and ``get_velocities``): their positions and velocities
        (converted from ASE units to Å/fs) are used, after checking the atoms and masses
        against the model's (:func:`gicnet_runtime.integrations.ase.atoms_to_state`);
        ``velocities`` must then be None.
        """
        items = positions if isinstance(positions, (list, tuple)) else [positions]
        if items and all(hasattr(a, "get_positions") and hasattr(a, "get_velocities")
                         for a in items):
            if velocities is not None:
                raise InputError("the velocities come from the Atoms: pass no velocities, "
                                 "and the times or durations by keyword")
            # Atoms belong to the ASE integration, two layers up (and to ASE): imported
            # only when Atoms are given, so plain arrays never import ASE.
            from gicnet_runtime.integrations.ase import atoms_to_state

            positions, velocities = atoms_to_state(positions, self.description)
        elif velocities is None:
            raise InputError("velocities are needed unless positions are ase.Atoms")
        pos = np.asarray(positions, dtype=np.float64)
        vel = np.asarray(velocities, dtype=np.float64)
        batched = pos.ndim == 3
        n_atoms = self.description.n_atoms
        if pos.ndim not in (2, 3) or pos.shape[-2:] != (n_atoms, 3):
            raise InputError(f"positions must have shape (B, {n_atoms}, 3) or ({n_atoms}, 3) "
                             f"for this model, got {pos.shape}")
        if vel.shape != pos.shape:
            raise InputError(f"velocities shape {vel.shape} differs from positions {pos.shape}")
        for name, arr in (("positions", pos), ("velocities", vel)):
            if not np.all(np.isfinite(arr)):
                raise InputError(f"{name} contain NaN or inf")
        check_geometry(pos, np.asarray(self.description.masses_amu),
                       ICDefinition(self.description.ic_rows))
        return (pos, vel, True) if batched else (pos[None], vel[None], False)

    def _times(self, times_fs, n_batch: int) -> np.ndarray:
        """Validated (B, K) float64 times within [0, tc]."""
        times = np.asarray(times_fs, dtype=np.float64)
        if times.ndim == 1:
            times = np.broadcast_to(times, (n_batch, times.size))
        if times.ndim != 2 or times.shape[0] != n_batch or times.shape[1] == 0:
            raise InputError(f"times_fs must have shape (K,) or ({n_batch}, K), got {times.shape}")
        tc = self.description.tc_fs
        if not np.all(np.isfinite(times)):
            raise InputError("times_fs contain NaN or inf")
        slack = TIME_RTOL * tc
        if np.any(times < -slack) or np.any(times > tc + slack):
            raise InputError(f"times must lie within the segment [0, {tc:g}] fs; got "
                             f"{times.min():g} .. {times.max():g} fs")
        return np.clip(times, 0.0, tc)


def load_model(path: str | os.PathLike | Sequence[str | os.PathLike] | None = None, *,
               device: str = "auto", providers: Sequence[str] | None = None,
               threads: int | None = None, max_chunk_bytes: int = MAX_CHUNK_BYTES) -> Model:
    """Open an exported model.

    Args:
        path: an ``.onnx`` file; a folder whose ``*.onnx`` files form an ensemble; a list
            of files (an ensemble); or None for the shipped model (``DEFAULT_MODEL_DIR``).
        device: ``"auto"`` (CUDA when it truly works, else CPU), ``"cpu"`` or ``"cuda"``.
        providers: explicit onnxruntime providers; they win over ``device``.
        threads: onnxruntime intra-op threads (default: onnxruntime's choice).
        max_chunk_bytes: bound on one onnxruntime call's outputs, bytes.
    """
    files = model_files(path)
    return Model([Session(f, device=device, providers=providers, threads=threads,
                          max_chunk_bytes=max_chunk_bytes) for f in files])


def model_files(path: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[Path]:
    """The model files that ``path`` names (see :func:`load_model`); folders are expanded."""
    if path is None:
        if not DEFAULT_MODEL_DIR.is_dir():
            raise ModelError(f"no model given and the shipped model folder {DEFAULT_MODEL_DIR} "
                             "does not exist; pass a model path")
        path = DEFAULT_MODEL_DIR
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    paths = [_shipped_by_name(p) for p in paths]
    if not paths:
        raise ModelError("no model files given")
    files = []
    for item in map(Path, paths):
        found = sorted(item.glob("*.onnx")) if item.is_dir() else [item]
        if not found:
            raise ModelError(f"model folder {item} holds no .onnx files")
        files += found
    return files


def _shipped_by_name(path: str | os.PathLike) -> str | os.PathLike:
    """A bare name of a shipped model (``"ethanol"``) that is not also a path stands for
    that shipped model's folder."""
    text = os.fspath(path)
    if not Path(text).exists() and text in shipped_names():
        return shipped_model(text)
    return path


def _check_same(first: Session, other: Session) -> None:
    a, b = first.description, other.description
    same = (a.atomic_numbers == b.atomic_numbers and a.tc_fs == b.tc_fs
            and a.has_energy == b.has_energy
            and np.allclose(a.masses_amu, b.masses_amu, rtol=1e-6, atol=0.0))
    if not same:
        raise ModelError(f"ensemble members {first.path.name} and {other.path.name} differ in "
                         "atoms, masses, tc or energy output")


def _best_members(stacked: dict[str, np.ndarray], velocities0: np.ndarray,
                  desc: ModelDescription) -> np.ndarray:
    """Per initial condition, the member with the smallest total-energy error: (B,) int.

    ``stacked``: every member's outputs (M, B, K, ...); their first time is t = 0, which
    gives the reference energy."""
    masses = np.asarray(desc.masses_amu)
    energy, vel = stacked[ENERGY_T], stacked[VELOCITIES_T]
    with np.errstate(invalid="ignore"):
        reference = reference_energy_eV(energy[:, :, 0], velocities0, masses)
    errors = total_energy_error_eV(energy, vel, masses, reference)
    return np.argmin(errors, axis=0)


def _member_mean(stacked: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The mean over the members (axis 0) of each output, per initial condition over the
    members whose whole prediction is finite (NaN where none is), and the positions'
    spread: RMS over members and atoms of the distance from the mean, (B, K) Å."""
    finite = np.ones(stacked[POSITIONS_T].shape[:2], dtype=bool)          # (M, B)
    for value in stacked.values():
        finite &= np.isfinite(value.reshape(value.shape[0], value.shape[1], -1)).all(axis=-1)
    count = finite.sum(axis=0)
    weight = np.where(count > 0, finite / np.maximum(count, 1), np.nan)     # (M, B)
    mean = {}
    for name, value in stacked.items():
        w = weight.reshape(weight.shape + (1,) * (value.ndim - 2))
        mean[name] = np.sum(np.where(w > 0, value, 0.0) * w, axis=0)
    distance2 = np.sum((stacked[POSITIONS_T] - mean[POSITIONS_T]) ** 2, axis=-1)
    spread = np.sqrt(np.sum(np.where(finite[..., None, None], distance2, 0.0), axis=(0, -1))
                     / (np.maximum(count, 1)[:, None] * distance2.shape[-1]))
    return mean, spread


def _check_finite(picked: dict[str, np.ndarray], times: np.ndarray) -> None:
    for name, value in picked.items():
        bad = ~np.isfinite(value.reshape(value.shape[0], value.shape[1], -1)).all(axis=-1)
        if bad.any():
            b, k = np.argwhere(bad)[0]
            raise ModelError(f"the model predicted non-finite {name} for initial condition "
                             f"{b} at t = {times[b, k]:g} fs")
