"""Accuracy of a model against reference trajectories: ``gicnet evaluate``.

Three measurements, each a pure function of a model and reference trajectories:

1. :func:`segment_errors`: from reference frames as initial conditions, the model's
   one-call prediction at every reference frame time in [0, tc] against the reference
   frames: RMSE of bonds (Å), angles and dihedrals (deg) of the model's IC rows between
   real atoms, and lab-frame Cartesian RMSD (Å, no alignment), each vs time;
   :func:`segment_end_attenuation`: whether the state at t = tc, which starts the next
   segment when unrolling, carries the bond stretches' full amplitude (a slope below 1
   loses vibrational energy at every segment boundary).
2. :func:`stability`: long unrolled trajectories checked for bonds outside
   ``BOND_RANGE`` times their equilibrium (reference mean) length, non-finite values,
   runtime failures, and the physical-sanity checks of :mod:`gicnet_runtime.core.sanity`
   against each trajectory's initial state (bonds, a frozen or overheated molecule, an
   atom too fast or too far out); :func:`energy_conservation` recomputes the potential energy with
   the reference engine on every ``every``-th frame, adds the kinetic energy of the
   predicted velocities and reports the RMS deviation from the initial total energy
   and its linear drift (kcal/mol, kcal/mol/ps).
3. the VACF spectra (:mod:`gicnet_runtime.analysis.spectrum`) of the stable long trajectories
   against the reference trajectories' spectrum.

:func:`run_evaluation` runs all three and writes report.json and PNG plots
(:mod:`gicnet_runtime.analysis.report`).  Units: Å, fs, Å/fs, amu, eV (kcal/mol in
reports).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from gicnet_runtime.analysis.spectrum import frame_spacing_fs
from gicnet_runtime.core import elements, internal, sanity
from gicnet_runtime.core.icdef import ICDefinition
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError
from gicnet_runtime.units import EV_IN_KCAL_PER_MOL

#: A bond shorter or longer than these multiples of its equilibrium length is broken.
BOND_RANGE = (0.7, 1.5)
#: Reference frame spacings must divide tc to within this fraction of a frame.
FRAME_RTOL = 1e-6
_FS_PER_PS = 1000.0


@dataclasses.dataclass(frozen=True)
class EvaluationSettings:
    """What ``gicnet evaluate`` measures.

    Attributes:
        starts_per_reference: segment-error initial conditions per reference trajectory,
            evenly spaced along it.
        long_starts: long trajectories, started from frame 0 of reference 0, 1, ... (in
            turn, later frames when there are more starts than references).
        long_duration_fs: length of each long trajectory, fs.
        long_dt_fs: frame spacing of the long trajectories, fs.
        engine: reference engine for the energy check ("gfn2", ...), or None to skip it.
        energy_every: recompute the energy on every this many long-trajectory frames.
        workers: processes for the reference-engine calls.
        max_lag_fs: longest VACF lag of both spectra, fs (capped by the long trajectories'
            and the references' lengths); 2 ps resolves ~17 cm-1 bins while averaging out
            most of the noise of a few 10-ps references.
        window: VACF taper (:data:`gicnet_runtime.analysis.spectrum.WINDOWS`).
        restore_energy: energy restoration while unrolling the long trajectories (None:
            when the model has energy; :func:`gicnet_runtime.unroll.propagate.propagate`).
        segment_fs: their unrolled segments' length, fs (None: the model's tc).
        unphysical: while unrolling them, "error": a segment that breaks a physical-sanity
            check fails (the trajectory backtracks or stops there); "warn": it goes on.
            Either way a trajectory that breaks one is not stable.
    """

    starts_per_reference: int = 20
    long_starts: int = 10
    long_duration_fs: float = 2000.0
    long_dt_fs: float = 1.0
    engine: str | None = None
    energy_every: int = 50
    workers: int = 1
    max_lag_fs: float = 2000.0
    window: str = "hann"
    restore_energy: bool | None = None
    segment_fs: float | None = None
    unphysical: str = "error"

    def __post_init__(self) -> None:
        sanity.check_mode(self.unphysical)
        for name in ("starts_per_reference", "long_starts", "energy_every", "workers"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.long_duration_fs > 0 and self.long_dt_fs > 0):
            raise InputError("long_duration_fs and long_dt_fs must be positive")


def coordinate_sets(icdef: ICDefinition) -> dict[str, np.ndarray]:
    """Atom tuples of the IC rows' bonds (P, 2), angles (P, 3) and dihedrals (P, 4)
    between real atoms (rows referring to dummy points describe orientation)."""
    return {"bond": internal.row_bonds(icdef), "angle": internal.row_angles(icdef),
            "dihedral": internal.row_dihedrals(icdef)}


def coordinate_values(positions: np.ndarray, sets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Values (..., P) of each set for positions (..., N, 3): Å for bonds, rad otherwise."""
    fns = {"bond": internal.bond_lengths, "angle": internal.angles,
           "dihedral": internal.dihedrals}
    return {kind: fns[kind](positions, *atoms.T) for kind, atoms in sets.items() if len(atoms)}


def segment_starts(n_frames: int, frames_per_segment: int, count: int) -> np.ndarray:
    """Up to ``count`` evenly spaced start frames leaving a whole segment after each."""
    last = n_frames - 1 - frames_per_segment
    if last < 0:
        raise InputError(f"a reference trajectory of {n_frames} frames is shorter than a segment")
    return np.unique(np.linspace(0, last, min(count, last + 1)).round().astype(np.int64))


def segment_samples(model, references: Sequence[Trajectory], starts_per_reference: int
                    ) -> tuple[int, float, list[tuple[Trajectory, np.ndarray]]]:
    """The frames per segment k (the reference frame spacing must divide tc), the spacing
    dt (fs) and, per reference, its :func:`segment_starts`."""
    tc = model.description.tc_fs
    dt = frame_spacing_fs(references)
    per_segment = tc / dt
    if abs(per_segment - round(per_segment)) > FRAME_RTOL * per_segment:
        raise InputError(f"reference frames {dt:g} fs apart do not divide tc = {tc:g} fs")
    k = int(round(per_segment))
    return k, dt, [(ref, segment_starts(ref.n_frames, k, starts_per_reference))
                   for ref in references]


def segment_errors(model, references: Sequence[Trajectory],
                   starts_per_reference: int) -> dict[str, object]:
    """Prediction errors vs time within the segment (see the module docstring).

    Returns times_fs (K,), bond_rmse_A, angle_rmse_deg, dihedral_rmse_deg and
    cartesian_rmsd_A (K,) lists, and n_starts."""
    k, dt, samples = segment_samples(model, references, starts_per_reference)
    offsets = np.arange(k + 1)
    pos0 = np.concatenate([ref.positions[starts] for ref, starts in samples])
    vel0 = np.concatenate([ref.velocities[starts] for ref, starts in samples])
    target = np.concatenate([ref.positions[starts[:, None] + offsets] for ref, starts in samples])
    # Unchecked: a poor model's unphysical frames are what these errors measure.
    predicted = model.predict(pos0, vel0, offsets * dt, check=False).positions
    sets = coordinate_sets(ICDefinition(model.description.ic_rows))
    got, want = coordinate_values(predicted, sets), coordinate_values(target, sets)
    out: dict[str, object] = {"times_fs": (offsets * dt).tolist(), "n_starts": len(pos0)}
    for kind, unit in (("bond", "A"), ("angle", "deg"), ("dihedral", "deg")):
        if kind in got:
            diff = got[kind] - want[kind]
            if kind == "dihedral":
                diff = internal.wrap_angle(diff)
            if unit == "deg":
                diff = np.degrees(diff)
            out[f"{kind}_rmse_{unit}"] = np.sqrt(np.mean(diff ** 2, axis=(0, 2))).tolist()
    msd = np.mean(np.sum((predicted - target) ** 2, axis=-1), axis=-1)
    out["cartesian_rmsd_A"] = np.sqrt(np.mean(msd, axis=0)).tolist()
    return out


def segment_end_attenuation(model, references: Sequence[Trajectory],
                            starts_per_reference: int) -> dict[str, dict[str, float]]:
    """:func:`bond_attenuation` of the model's prediction at t = tc, the member the unrolling
    would pick (``ensemble="select"``), from the same starts as :func:`segment_errors`;
    equilibrium lengths are the references' mean bond lengths."""
    k, _, samples = segment_samples(model, references, starts_per_reference)

    def frames(field, offset):
        return np.concatenate([getattr(ref, field)[starts + offset] for ref, starts in samples])

    got = model.predict(frames("positions", 0), frames("velocities", 0),
                        np.array([model.description.tc_fs]), ensemble="select", check=False)
    bonds = coordinate_sets(ICDefinition(model.description.ic_rows))["bond"]
    return bond_attenuation(got.positions[:, 0], got.velocities[:, 0], frames("positions", k),
                            frames("velocities", k), bonds,
                            equilibrium_bonds_A(references, bonds),
                            model.description.atomic_numbers)


def bond_attenuation(positions: np.ndarray, velocities: np.ndarray, ref_positions: np.ndarray,
                     ref_velocities: np.ndarray, bonds: np.ndarray, equilibrium_A: np.ndarray,
                     atomic_numbers: Sequence[int]) -> dict[str, dict[str, float]]:
    """How much of the reference's bond stretch a prediction keeps, per kind of bond.

    For predicted and reference frames (B, N, 3) (positions Å, velocities Å/fs) and bonds
    (P, 2) with equilibrium lengths (P,) Å: per element pair ("C-H", "O-H", ...), the
    least-squares slope through the origin of the predicted displacement from equilibrium
    on the reference's (``displacement``) and of the predicted stretch rate on the
    reference's (``rate``), and the bonds' count.  1 keeps the amplitude; 0.98 loses 2 %
    of it, about 4 % of the stretch's potential energy, per prediction.

    ``displacement_rms`` and ``rate_rms`` are the ratios of the predicted to the reference
    RMS displacement and rate: the stretch's energy kept, whatever its phase.  A prediction
    that is right on average but off in phase has a slope below 1 and RMS ratios of 1; one
    pulled towards the mean has both below 1."""
    def stretch(pos, vel):
        d = pos[:, bonds[:, 1]] - pos[:, bonds[:, 0]]
        length = np.linalg.norm(d, axis=-1)
        rate = np.sum(d * (vel[:, bonds[:, 1]] - vel[:, bonds[:, 0]]), axis=-1) / length
        return length - equilibrium_A, rate

    got, want = stretch(positions, velocities), stretch(ref_positions, ref_velocities)
    kinds = np.array([bond_kind(atomic_numbers[a], atomic_numbers[b]) for a, b in bonds])
    out = {}
    for kind in sorted(set(kinds.tolist())):
        cols = kinds == kind
        out[kind] = {}
        for name, g, w in zip(("displacement", "rate"), got, want):
            g, w = g[:, cols], w[:, cols]
            out[kind][name] = float(np.sum(g * w) / np.sum(w ** 2))
            out[kind][name + "_rms"] = float(np.sqrt(np.sum(g ** 2) / np.sum(w ** 2)))
        out[kind]["bonds"] = int(cols.sum())
    return out


def bond_kind(z1: int, z2: int) -> str:
    """Chemists' name of a bond's element pair: carbon first, hydrogen last ("C-H", "O-H")."""
    def key(z):
        return (0 if z == 6 else 2 if z == 1 else 1, elements.symbol(int(z)))
    return "-".join(elements.symbol(int(z)) for z in sorted((z1, z2), key=key))


def long_time_starts(references: Sequence[Trajectory], count: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Initial positions and velocities (count, N, 3): frame 0 of each reference in turn,
    then frames evenly further along when there are more starts than references."""
    rounds = -(-count // len(references))
    pos, vel = [], []
    for s in range(count):
        ref = references[s % len(references)]
        frame = (s // len(references)) * (ref.n_frames // rounds)
        pos.append(ref.positions[frame])
        vel.append(ref.velocities[frame])
    return np.stack(pos), np.stack(vel)


def equilibrium_bonds_A(references: Sequence[Trajectory], bonds: np.ndarray) -> np.ndarray:
    """Mean length of each bond (P, 2) over all reference frames, (P,) Å."""
    return np.mean(np.concatenate([internal.bond_lengths(r.positions, *bonds.T)
                                   for r in references]), axis=0)


def stability(trajectories: Sequence[Trajectory], bonds: np.ndarray,
              equilibrium_A: np.ndarray, duration_fs: float) -> list[dict[str, object]]:
    """Per trajectory: stable (bool), first_unstable_fs (None when stable), reached_fs,
    the worst bond ratios, the runtime's failure message and the first physical-sanity
    violation (:func:`gicnet_runtime.core.sanity.check_trajectory`), if any."""
    rows = []
    for traj in trajectories:
        ratio = internal.bond_lengths(traj.positions, *bonds.T) / equilibrium_A
        bad = ~np.all((ratio >= BOND_RANGE[0]) & (ratio <= BOND_RANGE[1]), axis=1)
        bad |= ~np.all(np.isfinite(traj.positions), axis=(1, 2))
        reached = float(traj.time_fs[-1])
        complete = reached >= duration_fs * (1 - FRAME_RTOL) and "failure" not in traj.info
        first = float(traj.time_fs[np.argmax(bad)]) if bad.any() else None
        unphysical = sanity.check_trajectory([traj])
        if unphysical is not None:
            first = min(unphysical.time_fs, first if first is not None else np.inf)
        rows.append({"stable": bool(complete and first is None), "first_unstable_fs": first,
                     "reached_fs": reached, "min_bond_ratio": float(np.nanmin(ratio)),
                     "max_bond_ratio": float(np.nanmax(ratio)),
                     "failure": traj.info.get("failure"),
                     "unphysical": None if unphysical is None else str(unphysical)})
    return rows


def energy_drift(time_fs: np.ndarray, total_eV: np.ndarray) -> dict[str, float]:
    """RMS deviation of the total energy from its initial value (kcal/mol) and the slope of
    its least-squares line (kcal/mol/ps).  time_fs, total_eV: (F,) with F >= 2."""
    e = (np.asarray(total_eV) - total_eV[0]) * EV_IN_KCAL_PER_MOL
    slope = np.polyfit(np.asarray(time_fs) / _FS_PER_PS, e, 1)[0]
    return {"rms_deviation_kcal_mol": float(np.sqrt(np.mean(e ** 2))),
            "drift_kcal_mol_per_ps": float(slope), "n_frames": int(e.size)}


def energy_conservation(trajectories: Sequence[Trajectory], potential: Callable,
                        every: int, until_fs: Sequence[float | None] | None = None
                        ) -> tuple[list[dict[str, object]], list[tuple[np.ndarray, np.ndarray]]]:
    """Total energy of every ``every``-th frame: ``potential`` (list of (F, N, 3) Å -> list of
    (F,) eV) plus the kinetic energy of the frames' velocities.

    ``until_fs`` (per trajectory) stops the check at that time (e.g. where it became
    unstable).  Returns per-trajectory :func:`energy_drift` results (None for fewer than 2
    frames) and the (time_fs, total_eV) series."""
    from gicnet_runtime.unroll.momentum import kinetic_energy_eV

    until_fs = until_fs or [None] * len(trajectories)
    picks = []
    for traj, end in zip(trajectories, until_fs):
        index = np.arange(0, traj.n_frames, every)
        picks.append(index if end is None else index[traj.time_fs[index] < end])
    energies = potential([t.positions[i] for t, i in zip(trajectories, picks)])
    results, series = [], []
    for traj, index, e_pot in zip(trajectories, picks, energies):
        total = np.asarray(e_pot) + kinetic_energy_eV(traj.velocities[index], traj.masses)
        series.append((traj.time_fs[index], total))
        results.append(energy_drift(traj.time_fs[index], total) if index.size >= 2 else None)
    return results, series


def summarise(values: Sequence[float]) -> dict[str, float] | None:
    """mean, max of |x| and the values' count; None for no values."""
    values = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if values.size == 0:
        return None
    return {"mean": float(values.mean()), "max_abs": float(np.max(np.abs(values))),
            "count": int(values.size)}
