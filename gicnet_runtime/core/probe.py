"""The load check: one tiny call that tests a model's graph against its metadata.

Metadata can lie (a tc the graph cannot reach, a wrong atom order) and a graph can be
wired wrong (outputs swapped, times ignored); neither shows until results are wrong.
On load, :class:`~gicnet_runtime.core.session.Session` runs the graph once on one start
built from the metadata alone, at the times 0, tc/2 and tc, and refuses the file when

* an output is NaN or inf at any of them (the graph does not predict up to tc_fs);
* the outputs at t = 0 are not the inputs (the contract's identity, which the gate
  f(0) = 0 makes exact for any representable geometry), naming swapped outputs;
* positions do not change up to tc although the start moves (times are ignored).

Shapes (and the member axis of ensemble files) are checked by the session's run.

The start is a plausible molecule: the IC rows are read as a Z-matrix (each atom bonded
to its ref1 at a tetrahedral angle, turned about ref1-ref2 away from the atoms placed
before it), put in its initial body frame and checked like any input
(:func:`~gicnet_runtime.core.icdef.check_geometry`); its velocities are thermal at
``PROBE_TEMPERATURE_K``, from a fixed seed.  The check costs ~1-5 ms per file.

What the probe cannot know: the tc the graph was trained for (only that it stays finite
up to the metadata's), its accuracy, whether its masses and elements are the ones it was
trained on, or its behaviour from starts other than this one (a failure that depends on
the state passes).
"""

from __future__ import annotations

import functools

import numpy as np

from gicnet_runtime.core.contract import POSITIONS, POSITIONS_T, TIMES, VELOCITIES, VELOCITIES_T
from gicnet_runtime.core.description import ModelDescription
from gicnet_runtime.core.icdef import (
    DUMMY_POINTS_A,
    ICDefinition,
    body_frame_rotation,
    check_geometry,
    reference_angles_deg,
)
from gicnet_runtime.core.mechanics import centre_of_mass
from gicnet_runtime.errors import InputError, ModelError
from gicnet_runtime.units import AMU_A2_PER_FS2_IN_EV, KB_EV_PER_K

#: Bond lengths of the probe molecule, Å: to hydrogen (C-H ~1.09) and between heavier atoms.
BOND_TO_H_A = 1.09
BOND_HEAVY_A = 1.45
#: Angle atom-ref1-ref2 of every row, deg (tetrahedral).
ANGLE_DEG = 109.47
#: Candidate dihedrals of a row: from this one, deg, in steps of the other, deg.
DIHEDRAL_DEG, DIHEDRAL_STEP_DEG = 180.0, 30.0
#: The probe molecule is plausible when no two atoms are closer than this, Å.
PLAUSIBLE_DISTANCE_A = 0.8
#: Smallest distance of every reference angle from 0 and 180 deg wanted at the probe
#: geometry, deg.
WELL_CONDITIONED_DEG = 20.0
#: Z-matrices with random angles tried when the tetrahedral one is not plausible.
RANDOM_ATTEMPTS = 32
#: Range of the random attempts' angles, deg.
RANDOM_ANGLE_DEG = (95.0, 125.0)
#: Temperature of the probe's velocities, K; their fixed random seed.
PROBE_TEMPERATURE_K = 300.0
PROBE_SEED = 0
#: Largest departure from the inputs at t = 0, Å and Å/fs (float32 rounding of the
#: coordinate transforms is ~1e-6 Å with the shipped model on the CPU) ...
IDENTITY_ATOL_A = 1e-4
IDENTITY_ATOL_A_PER_FS = 1e-5
#: ... plus this fraction of the largest input value (positions: |x| of the start, Å;
#: velocities: |v|, Å/fs), by provider: the CPU rounds in float32; GPU providers run
#: MatMul in TF32 or float16 by default (10-bit mantissa: ~5e-4 per rounding, a few
#: roundings through the coordinate transforms).
IDENTITY_RTOL = {"CPUExecutionProvider": 1e-5}
IDENTITY_RTOL_REDUCED = 4e-3
#: Below the identity tolerance the positions at tc count as unchanged from the inputs
#: (the probe's atoms move ~0.4 Å in 10 fs at 300 K).
_HYDROGEN = 1
#: |(c - b) x (b - a)| / |b - a| below this makes a row's references collinear, Å.
_DEGENERATE_A = 1e-3


def probe_feed(desc: ModelDescription) -> dict[str, np.ndarray]:
    """The probe's graph inputs: ``positions`` (1, N, 3) Å, ``velocities`` (1, N, 3) Å/fs
    and ``times`` (1, 3) fs = [0, tc/2, tc], float32."""
    positions, velocities = _probe_start(desc.atomic_numbers, desc.masses_amu, desc.ic_rows)
    times = np.array([[0.0, desc.tc_fs / 2, desc.tc_fs]], np.float32)
    return {POSITIONS: positions[None], VELOCITIES: velocities[None], TIMES: times}


def check_outputs(desc: ModelDescription, feed: dict[str, np.ndarray],
                  outputs: dict[str, np.ndarray], provider: str = "CPUExecutionProvider"
                  ) -> None:
    """Raise ModelError (one line, without the file name) when the probe's outputs
    disagree with the metadata.

    Args:
        desc: the model's description.
        feed: :func:`probe_feed`'s inputs.
        outputs: ``positions_t``, ``velocities_t`` (M, 1, 3, N, 3) Å, Å/fs and, with
            energy, ``energy_t`` (M, 1, 3) eV, as the session returns them.
        provider: the onnxruntime provider the graph ran on (sets the t = 0 tolerance).
    """
    times = feed[TIMES][0]
    for name, value in outputs.items():
        bad = ~np.isfinite(value.reshape(*value.shape[:3], -1)).all(axis=-1)  # (M, 1, 3)
        if bad.any():
            member, _, k = np.argwhere(bad)[0]
            why = (": the graph does not predict up to the metadata's tc_fs = "
                   f"{desc.tc_fs:g} fs" if k else "")
            raise ModelError(f"output {name} is NaN or inf at t = {times[k]:g} fs (member "
                             f"{member}) on the load check{why}")
    x0, v0 = feed[POSITIONS][0], feed[VELOCITIES][0]
    x_t, v_t = outputs[POSITIONS_T][:, 0], outputs[VELOCITIES_T][:, 0]   # (M, 3, N, 3)
    rtol = IDENTITY_RTOL.get(provider, IDENTITY_RTOL_REDUCED)
    x_tol = IDENTITY_ATOL_A + rtol * float(np.abs(x0).max())
    v_tol = IDENTITY_ATOL_A_PER_FS + rtol * float(np.abs(v0).max())
    if _close(x_t[:, 0], v0, x_tol) and _close(v_t[:, 0], x0, x_tol):
        raise ModelError(f"outputs {POSITIONS_T} and {VELOCITIES_T} are swapped: at t = 0 "
                         f"{POSITIONS_T} holds the input velocities and {VELOCITIES_T} the "
                         "positions")
    _check_identity(POSITIONS_T, x_t[:, 0], x0, x_tol, "Å")
    _check_identity(VELOCITIES_T, v_t[:, 0], v0, v_tol, "Å/fs")
    if _close(x_t[:, -1], x0, x_tol):
        raise ModelError(f"output {POSITIONS_T} at t = tc equals the start although the "
                         "atoms move: the graph ignores its times input")


def _check_identity(name: str, value: np.ndarray, expected: np.ndarray, tol: float,
                    unit: str) -> None:
    """value (M, N, 3) must equal expected (N, 3) within tol, in every member."""
    error = np.abs(value - expected).max(axis=(-2, -1))                 # (M,)
    if np.any(error > tol):
        member = int(np.argmax(error))
        raise ModelError(f"output {name} at t = 0 differs from the input by {error[member]:.3g} "
                         f"{unit} (member {member}; at most {tol:.2g}): the graph does not "
                         "return its inputs at t = 0")


def _close(value: np.ndarray, expected: np.ndarray, atol: float) -> bool:
    return bool(np.all(np.abs(value - expected) <= atol))


@functools.lru_cache(maxsize=8)
def _probe_start(atomic_numbers: tuple[int, ...], masses_amu: tuple[float, ...],
                 ic_rows: tuple[tuple[int, int, int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """Positions (N, 3) Å in the initial body frame and thermal velocities (N, 3) Å/fs of a
    representable molecule (cached: an ensemble's members share it).  The tetrahedral
    Z-matrix first, then random angles, until no two atoms are closer than
    ``PLAUSIBLE_DISTANCE_A``; else the representable one whose atoms are farthest apart."""
    icdef, masses = ICDefinition(ic_rows), np.asarray(masses_amu)
    unit = np.ones_like(masses)
    rng = np.random.default_rng(PROBE_SEED)
    best, best_score = None, 0.0
    for attempt in range(RANDOM_ATTEMPTS + 1):
        angles = (np.radians(rng.uniform(*RANDOM_ANGLE_DEG, len(ic_rows))) if attempt
                  else np.full(len(ic_rows), np.radians(ANGLE_DEG)))
        positions = _placed(atomic_numbers, ic_rows, angles)
        if positions is None:
            continue
        # Built with equal masses, so the probe's positions do not depend on the metadata's
        # masses (an atom of the Z-matrix can lie exactly in a plane, where a 1e-16 change
        # of the frame would move it to the other side).
        rel = positions - centre_of_mass(positions, unit)
        positions = rel @ body_frame_rotation(positions, unit, icdef).T
        try:
            check_geometry(positions, masses, icdef)
        except InputError:  # atoms on top of each other, collinear references
            continue
        # Well conditioned: atoms apart, and every reference angle (the body frame's
        # included) far from 0 and 180 deg, so that a graph's float32 round trip at t = 0
        # is not amplified by a nearly undefined dihedral.
        reference = reference_angles_deg(positions, masses, icdef)
        margin = float(np.min(np.minimum(reference, 180.0 - reference)))
        score = min(_closest_pair_A(positions) / PLAUSIBLE_DISTANCE_A,
                    margin / WELL_CONDITIONED_DEG)
        if score > best_score:
            best, best_score = positions, score
        if score >= 1.0:
            break
    if best is None:
        raise ModelError("the load check found no representable geometry for the metadata's "
                         "ic_rows (atoms crowd one another)")
    sigma = np.sqrt(KB_EV_PER_K * PROBE_TEMPERATURE_K / (masses * AMU_A2_PER_FS2_IN_EV))
    velocities = np.random.default_rng(PROBE_SEED).normal(size=best.shape) * sigma[:, None]
    start = best.astype(np.float32), velocities.astype(np.float32)
    for array in start:
        array.setflags(write=False)  # cached and shared
    return start


def _placed(atomic_numbers, ic_rows, angles: np.ndarray) -> np.ndarray | None:
    """Positions (N, 3) Å from the IC rows read as a Z-matrix (NeRF placement; the dummy
    points at ``DUMMY_POINTS_A``): each atom at a bond length from ref1, at ``angles`` (N,)
    rad to ref2, at the candidate dihedral that keeps it farthest from the atoms placed
    before it.  None when a row's references are collinear."""
    points = {-1 - i: np.asarray(p, float) for i, p in enumerate(DUMMY_POINTS_A)}
    dihedrals = np.radians(DIHEDRAL_DEG + np.arange(0.0, 360.0, DIHEDRAL_STEP_DEG))  # (C,)
    placed = []
    for (atom, ref1, ref2, ref3), angle in zip(ic_rows, angles, strict=True):
        a, b, c = points[ref1], points[ref2], points[ref3]
        axis, normal = b - a, np.cross(c - b, b - a)
        if np.linalg.norm(normal) < _DEGENERATE_A * np.linalg.norm(axis):
            return None
        axis, normal = axis / np.linalg.norm(axis), normal / np.linalg.norm(normal)
        hydrogen = _HYDROGEN in (atomic_numbers[atom], atomic_numbers[ref1] if ref1 >= 0 else 0)
        bond = BOND_TO_H_A if hydrogen else BOND_HEAVY_A
        local = bond * np.stack([np.full_like(dihedrals, np.cos(angle)),
                                 np.sin(angle) * np.cos(dihedrals),
                                 np.sin(angle) * np.sin(dihedrals)], axis=-1)      # (C, 3)
        candidates = a + local @ np.stack([axis, np.cross(normal, axis), normal])  # (C, 3)
        if placed:
            others = np.stack([points[i] for i in placed])
            gap = np.linalg.norm(candidates[:, None] - others[None], axis=-1).min(axis=1)
            candidates = candidates[np.argmax(gap):]
        points[atom] = candidates[0]
        placed.append(atom)
    return np.stack([points[i] for i in range(len(ic_rows))])


def _closest_pair_A(positions: np.ndarray) -> float:
    """Smallest distance between two atoms of positions (N, 3) Å (inf for one atom)."""
    dist = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    dist[np.diag_indices(len(positions))] = np.inf
    return float(dist.min())
