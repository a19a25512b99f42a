"""Physical sanity of predicted frames: pure, batched checks against the initial state.

A finite prediction can still be absurd: a poorly trained model can squeeze a C-C bond
to 0.2 Å or freeze a molecule to 1 K, and absurd initial velocities fling a molecule
70 Å apart within one segment.  Each check compares the frames of a trajectory with its
own initial state (t = 0), the one thing the runtime knows of the molecule:

* **bond**: every pair of atoms closer than ``BOND_DETECT_FACTOR`` times the sum of
  their covalent radii at t = 0 is a bond, and must stay within ``BOND_RATIO_RANGE``
  times its initial length;
* **temperature**: the kinetic temperature of the internal motion (translation and
  rotation removed; 3N - 6 degrees of freedom, 3N - 5 for a linear molecule) must stay
  below ``TEMPERATURE_FACTOR`` · max(T0, ``COLD_START_K``) in every frame, and must not
  stay below T0 / ``FROZEN_FACTOR`` for ``FROZEN_WINDOW_FS`` (a frozen molecule; a single
  frame's kinetic energy passes near zero at every turning point of a small molecule);
* **speed**: no atom faster than ``MAX_SPEED_A_PER_FS``;
* **extent**: no atom more than ``EXPLOSION_MARGIN_A`` farther from the centre of mass
  than the farthest atom at t = 0.

Arrays: positions (..., B, K, N, 3) Å and velocities (..., B, K, N, 3) Å/fs, for the B
trajectories of a :class:`Bounds` (K frames each, in any order; any leading axes, e.g.
ensemble members), times (B, K) fs.  docs/robustness.md ("Physical sanity") gives the
reasons for each band, the margins measured on the shipped model, and where the checks
run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from gicnet_runtime.core.description import ModelDescription
from gicnet_runtime.core.elements import atom_labels, covalent_radii_A
from gicnet_runtime.core.mechanics import (  # noqa: F401  (re-exported)
    LINEAR_RTOL,
    angular_momentum,
    centre_of_mass,
    degrees_of_freedom,
    inertia_tensor,
    internal_kinetic_energy_eV,
    internal_temperature_K,
    kinetic_energy_eV,
    linear_momentum,
)
from gicnet_runtime.core.timegrid import TIME_RTOL
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError, ModelError

#: Atoms closer than this times the sum of their covalent radii at t = 0 are bonded (the
#: factor gicnet_train.icbuild builds IC definitions with; it takes C-H up to 1.28 Å, C-C
#: up to 1.82 Å, while the nearest non-bonded pairs of organic molecules, H...H of one
#: CH3 group at ~1.78 Å against 0.74 Å, stay far outside).
BOND_DETECT_FACTOR = 1.2
#: A bond must stay within these multiples of its initial length.  A thermal stretch at
#: 300-1000 K moves a bond by < ~0.15 Å (C-H 1.09 ± 0.15 Å: 0.76-1.32 of the initial length
#: even when the start itself is stretched or compressed that much; the shipped model
#: stays within 0.86-1.16 over 10 x 50 ps), and a bond at 1.6 times its length is broken.
BOND_RATIO_RANGE = (0.6, 1.6)
#: The internal kinetic temperature must stay below this factor times the initial one
#: (or ``COLD_START_K``).  In NVE the kinetic energy of a molecule of ethanol's size swings
#: by a factor ~3 around its mean, and one frame's T0 is itself a sample of that swing
#: (the shipped model: at most 3.1 T0 in 10 x 50 ps).
TEMPERATURE_FACTOR = 10.0
#: ... and must not stay below T0 / this for ``FROZEN_WINDOW_FS``.  Single frames of the
#: shipped model dip to 0.03 T0 and, where its long trajectories cool (one of 10 drifts
#: from 200 to 75 K in 50 ps), the warmest frame of a 10 fs window to 0.12 T0; a frozen
#: molecule (T0 / 300 from 300 K) is far below T0 / 30.
FROZEN_FACTOR = 30.0
#: How long the molecule must stay below T0 / ``FROZEN_FACTOR`` to count as frozen, fs
#: (about one C-H period: every thermal molecule moves within it).
FROZEN_WINDOW_FS = 10.0
#: Starts colder than this get this temperature's ceiling (a molecule started at rest
#: warms up as its potential energy turns kinetic, so T0 ~ 0 gives no ceiling), K.
COLD_START_K = 300.0
#: An atom this much farther from the centre of mass than any atom at t = 0 means the
#: prediction exploded, Å.
EXPLOSION_MARGIN_A = 10.0
#: A speed above this means the prediction exploded, Å/fs (100 km/s; thermal H ~0.02).
MAX_SPEED_A_PER_FS = 1.0
#: The checks, in the order a frame's violations are reported.
CHECKS = ("extent", "speed", "bond", "temperature")
#: The checks beyond the unrolling's original numerical ones (optional there).
PHYSICAL_CHECKS = ("bond", "temperature")
#: What a violation is: "error" (a failure: the unrolling backtracks or stops, predict
#: raises) or "warn" (reported, the run goes on).
UNPHYSICAL_MODES = ("error", "warn")


def extent_A(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Largest atom distance from the centre of mass: (..., N, 3) Å -> (...) Å."""
    return np.max(_distances_from_centre_A(positions, masses), axis=-1)


def bonded_pairs(positions: np.ndarray, atomic_numbers: Sequence[int]) -> np.ndarray:
    """(P, 2) atom pairs i < j bonded (``BOND_DETECT_FACTOR``) in any of the structures
    ``positions`` (B, N, 3) Å, in increasing order."""
    radii = covalent_radii_A(atomic_numbers)
    cutoff = BOND_DETECT_FACTOR * (radii[:, None] + radii[None, :])
    bonded = np.zeros(cutoff.shape, dtype=bool)
    for structure in np.asarray(positions, dtype=np.float64).reshape(-1, *cutoff.shape[:1], 3):
        bonded |= np.linalg.norm(structure[:, None] - structure[None], axis=-1) < cutoff
    return np.argwhere(np.triu(bonded, k=1)).astype(np.int64).reshape(-1, 2)


@dataclasses.dataclass(frozen=True)
class Bounds:
    """What the frames of B trajectories are checked against, from their initial states.

    Attributes:
        labels: (N,) atom labels for messages ("C1", "H4", ...).
        masses_amu: (N,) amu.
        bonds: (P, 2) bonded atom pairs (:func:`bonded_pairs`).
        bond_lengths_A: (B, P) their initial lengths, Å.
        temperature_K: (B,) initial internal kinetic temperature T0, K (NaN: no
            internal degrees of freedom).
        n_dof: (B,) internal degrees of freedom.
        extent_limit_A: (B,) initial extent plus ``EXPLOSION_MARGIN_A``, Å.
    """

    labels: tuple[str, ...]
    masses_amu: np.ndarray
    bonds: np.ndarray
    bond_lengths_A: np.ndarray
    temperature_K: np.ndarray
    n_dof: np.ndarray
    extent_limit_A: np.ndarray

    @classmethod
    def initial(cls, positions: np.ndarray, velocities: np.ndarray, masses: np.ndarray,
                atomic_numbers: Sequence[int]) -> Bounds:
        """Bounds of the initial states positions (B, N, 3) Å, velocities (B, N, 3) Å/fs."""
        pos = np.asarray(positions, dtype=np.float64)
        vel = np.asarray(velocities, dtype=np.float64)
        masses = np.asarray(masses, dtype=np.float64)
        bonds = bonded_pairs(pos, atomic_numbers)
        n_dof = degrees_of_freedom(pos, masses)
        return cls(labels=atom_labels(atomic_numbers), masses_amu=masses, bonds=bonds,
                   bond_lengths_A=_bond_lengths_A(pos, bonds),
                   temperature_K=internal_temperature_K(pos, vel, masses, n_dof),
                   n_dof=n_dof, extent_limit_A=extent_A(pos, masses) + EXPLOSION_MARGIN_A)

    def rows(self, rows: np.ndarray) -> Bounds:
        """The bounds of trajectories ``rows`` (A,) alone."""
        return dataclasses.replace(
            self, bond_lengths_A=self.bond_lengths_A[rows], temperature_K=self.temperature_K[rows],
            n_dof=self.n_dof[rows], extent_limit_A=self.extent_limit_A[rows])

    def temperature_band_K(self) -> tuple[np.ndarray, np.ndarray]:
        """(B,) the frozen line and the highest allowed internal temperature, K."""
        t0 = self.temperature_K
        return t0 / FROZEN_FACTOR, TEMPERATURE_FACTOR * np.maximum(t0, COLD_START_K)


@dataclasses.dataclass(frozen=True)
class Frames:
    """Frames to check against :class:`Bounds`: positions (..., B, K, N, 3) Å, velocities
    (..., B, K, N, 3) Å/fs at times (B, K) fs (any order); ``start_fs`` (B,) or a number:
    the time of the last state known to be fine (the initial state, a segment's start),
    from which a frozen stretch is counted; ``window_fs``: how long a frozen stretch
    must last (``FROZEN_WINDOW_FS``; shorter where less time is covered, a segment);
    ``until_fs`` (B,) or a number: frames after it are not checked."""

    positions: np.ndarray
    velocities: np.ndarray
    times_fs: np.ndarray
    start_fs: np.ndarray | float = 0.0
    window_fs: float = FROZEN_WINDOW_FS
    until_fs: np.ndarray | float = np.inf


@dataclasses.dataclass(frozen=True)
class Violation:
    """A broken check: which (one of ``CHECKS``), what broke it in the frame (e.g.
    ``"bond C1-C2 at 0.23 Å (started at 1.52 Å; allowed 0.6-1.6 times that)"``) and the
    frame's time, fs; ``str()`` says all three."""

    check: str
    what: str
    time_fs: float

    def __str__(self) -> str:
        return f"{self.what} at t = {self.time_fs:g} fs"


def violations(bounds: Bounds, frames: Frames,
               checks: Sequence[str] = CHECKS) -> dict[str, np.ndarray]:
    """Which frames break each check: {check: (..., B, K) bool} (non-finite frames
    break none; the caller tests finiteness)."""
    until = np.asarray(frames.until_fs, dtype=np.float64)
    checked = np.asarray(frames.times_fs) <= until[..., None] * (1 + TIME_RTOL)
    with np.errstate(invalid="ignore"):
        return {name: _MEASURES[name](bounds, frames)[0] & checked for name in checks}


def first_violations(bounds: Bounds, frames: Frames,
                     checks: Sequence[str] = CHECKS) -> np.ndarray:
    """Per trajectory (and leading index), the :class:`Violation` at the earliest frame
    that breaks a check (the first of ``checks`` it breaks), or None: (..., B) object."""
    masks = violations(bounds, frames, checks)
    bad = np.stack([masks[name] for name in checks])                      # (C, ..., B, K)
    failing = bad.any(axis=0)
    times = np.broadcast_to(frames.times_fs, failing.shape)
    frame = np.argmin(np.where(failing, times, np.inf), axis=-1)          # (..., B)
    out = np.full(frame.shape, None, dtype=object)
    for index in map(tuple, np.argwhere(failing.any(axis=-1))):
        where = (*index, frame[index])
        name = next(n for n, m in zip(checks, bad) if m[where])
        what = describe(bounds, frames.positions[where], frames.velocities[where], index[-1],
                        name, frames.window_fs)
        out[index] = Violation(name, what, float(times[where]))
    return out


def describe(bounds: Bounds, positions: np.ndarray, velocities: np.ndarray, row: int,
             check: str, window_fs: float = FROZEN_WINDOW_FS) -> str:
    """What breaks ``check`` in one frame (N, 3) Å, Å/fs of trajectory ``row``."""
    one = Frames(positions[None, None], velocities[None, None], np.zeros((1, 1)),
                 window_fs=window_fs)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _MEASURES[check](bounds.rows(np.array([row])), one)[1]()


def check_trajectory(blocks: Iterable[Trajectory]) -> Violation | None:
    """The first violation in the frames of one trajectory, given in time order as
    consecutive blocks (:meth:`gicnet_runtime.io.spool.FrameSpool.blocks`, or a list of
    one Trajectory), against its frame 0 (the initial state); None when all pass."""
    bounds, tail, start = None, None, 0.0
    for block in blocks:
        pos = np.asarray(block.positions, dtype=np.float64)
        vel = np.asarray(block.velocities, dtype=np.float64)
        times = np.asarray(block.time_fs, dtype=np.float64)
        if bounds is None:
            bounds = Bounds.initial(pos[:1], vel[:1], block.masses, block.atomic_numbers)
            start = float(times[0])
        elif tail is not None:  # the previous block's last window: a frozen stretch spans both
            pos, vel, times = (np.concatenate([a, b]) for a, b in zip(tail, (pos, vel, times)))
        found = first_violations(bounds, Frames(pos[None], vel[None], times[None], start))[0]
        if found is not None:
            return found
        keep = times >= times[-1] - FROZEN_WINDOW_FS
        tail, start = (pos[keep], vel[keep], times[keep]), max(start, float(times[keep][0]))
    return None


def _distances_from_centre_A(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """(..., N) atom distances from the centre of mass, Å."""
    return np.linalg.norm(positions - centre_of_mass(positions, masses)[..., None, :], axis=-1)


def _bond_lengths_A(positions: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    """(..., P) lengths of bonds (P, 2) in positions (..., N, 3), Å."""
    return np.linalg.norm(positions[..., bonds[:, 0], :] - positions[..., bonds[:, 1], :],
                          axis=-1)


def frozen(cold: np.ndarray, times_fs: np.ndarray, start_fs, window_fs: float) -> np.ndarray:
    """Frames (..., K) that are ``cold`` and have been since at least ``window_fs``: no
    frame that is not cold, nor the start ``start_fs`` (broadcast to (...)), within
    ``window_fs`` before them.  times_fs: broadcast to (..., K), any order."""
    if not cold.any():  # nothing cold, nothing frozen (the usual case)
        return np.zeros(cold.shape, dtype=bool)
    times = np.broadcast_to(times_fs, cold.shape)
    order = np.argsort(times, axis=-1, kind="stable")
    t = np.take_along_axis(times, order, -1)
    warm = np.where(np.take_along_axis(cold, order, -1), -np.inf, t)
    start = np.broadcast_to(np.asarray(start_fs, dtype=np.float64)[..., None], t.shape)
    last_warm = np.maximum.accumulate(np.maximum(warm, start), axis=-1)
    stuck = (t - last_warm) >= window_fs * (1 - TIME_RTOL)
    out = np.empty_like(stuck)
    np.put_along_axis(out, order, stuck, -1)
    return out


def _extent(bounds: Bounds, frames: Frames):
    distance = _distances_from_centre_A(frames.positions, bounds.masses_amu)  # (..., B, K, N)
    bad = np.max(distance, axis=-1) > bounds.extent_limit_A[:, None]

    def detail() -> str:
        k = int(np.argmax(distance.reshape(-1)))
        start = bounds.extent_limit_A[0] - EXPLOSION_MARGIN_A
        return (f"exploding geometry: atom {bounds.labels[k]} {distance.reshape(-1)[k]:.1f} Å "
                f"from the centre of mass, more than {EXPLOSION_MARGIN_A:g} Å beyond the "
                f"initial extent ({start:.2f} Å)")
    return bad, detail


def _speed(bounds: Bounds, frames: Frames):
    speed = np.linalg.norm(frames.velocities, axis=-1)                     # (..., B, K, N)
    bad = np.max(speed, axis=-1) > MAX_SPEED_A_PER_FS

    def detail() -> str:
        k = int(np.argmax(speed.reshape(-1)))
        return (f"atom {bounds.labels[k]} at {speed.reshape(-1)[k]:.3g} Å/fs, faster than "
                f"{MAX_SPEED_A_PER_FS:g} Å/fs")
    return bad, detail


def _bond(bounds: Bounds, frames: Frames):
    length = _bond_lengths_A(frames.positions, bounds.bonds)               # (..., B, K, P)
    ratio = length / bounds.bond_lengths_A[:, None, :]
    low, high = BOND_RATIO_RANGE
    bad = np.any((ratio < low) | (ratio > high), axis=-1)

    def detail() -> str:
        p = int(np.argmax(np.abs(np.log(ratio.reshape(-1)))))
        i, j = bounds.bonds[p]
        return (f"bond {bounds.labels[i]}-{bounds.labels[j]} at {length.reshape(-1)[p]:.2f} Å "
                f"(started at {bounds.bond_lengths_A[0, p]:.2f} Å; allowed {low:g}-{high:g} "
                "times that)")
    return bad, detail


def _temperature(bounds: Bounds, frames: Frames):
    temperature = internal_temperature_K(frames.positions, frames.velocities,
                                         bounds.masses_amu, bounds.n_dof[:, None])
    low, high = bounds.temperature_band_K()
    cold = temperature < low[:, None]
    start = np.broadcast_to(np.asarray(frames.start_fs, dtype=np.float64), cold.shape[:-1])
    bad = (temperature > high[:, None]) | frozen(cold, frames.times_fs, start,
                                                 frames.window_fs)

    def detail() -> str:
        value, start_K = float(temperature.reshape(-1)[0]), bounds.temperature_K[0]
        if value < low[0]:
            return (f"frozen: temperature {value:.1f} K, below {low[0]:.1f} K for "
                    f"{frames.window_fs:g} fs (started at {start_K:.1f} K)")
        return (f"overheated: temperature {value:.0f} K, above {high[0]:.0f} K (started at "
                f"{start_K:.1f} K)")
    return bad, detail


#: Each check: (bounds, frames) -> ((..., B, K) bool, detail()), detail describing the
#: violation of a single frame (B = K = 1).
_MEASURES = {"extent": _extent, "speed": _speed, "bond": _bond, "temperature": _temperature}


def check_mode(unphysical: str) -> str:
    """``unphysical`` if it is one of ``UNPHYSICAL_MODES``, else InputError."""
    if unphysical not in UNPHYSICAL_MODES:
        raise InputError(f"unphysical must be one of {', '.join(UNPHYSICAL_MODES)}, got "
                         f"{unphysical!r}")
    return unphysical


def prediction_violations(description: ModelDescription, positions0: np.ndarray,
                          velocities0: np.ndarray, positions: np.ndarray,
                          velocities: np.ndarray, times_fs: np.ndarray
                          ) -> list[Violation | None]:
    """Per initial condition, the first violation among frames predicted from it in one
    segment by a model of ``description``, or None; a frozen stretch counts from t = 0 and
    must last ``FROZEN_WINDOW_FS`` (tc when shorter).

    positions0, velocities0: (B, N, 3) Å, Å/fs; positions, velocities: (B, K, N, 3) Å,
    Å/fs at times_fs (B, K) or (K,) fs."""
    masses = np.asarray(description.masses_amu, dtype=np.float64)
    bounds = Bounds.initial(positions0, velocities0, masses, description.atomic_numbers)
    times = np.broadcast_to(np.asarray(times_fs, dtype=np.float64), np.shape(positions)[:2])
    frames = Frames(np.asarray(positions, dtype=np.float64),
                    np.asarray(velocities, dtype=np.float64), times, 0.0,
                    min(FROZEN_WINDOW_FS, description.tc_fs))
    return list(first_violations(bounds, frames))


def refuse(found: Sequence[Violation | None]) -> None:
    """ModelError naming the first initial condition whose predicted frames broke a
    check (``found``: :func:`prediction_violations`' answer)."""
    for b, what in enumerate(found):
        if what is not None:
            raise ModelError(f"the prediction from initial condition {b} is unphysical: "
                             f"{what}")
