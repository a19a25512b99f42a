"""Initial conditions for the benchmarks: the shipped held-out ethanol states, batched.

The shipped ``initial.extxyz`` is read with gicnet's reader (ASE) when ASE is installed,
else with a minimal reader of the same columns, so that GPU machines without ASE run the
gicnet measurements too.  Batches larger than the file repeat its states, each copy
rigidly rotated about its centre of mass (same physics, different numbers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gicnet_runtime.units import ase_velocities_to_a_per_fs

_SYMBOLS = {"H": 1, "C": 6, "N": 7, "O": 8}
#: Seed of the rotations that make batch copies distinct.
BATCH_SEED = 0


def load_initial(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(atomic numbers (N,), positions (B, N, 3) Å, velocities (B, N, 3) Å/fs)."""
    try:
        import ase  # noqa: F401
    except ImportError:
        return _read_extxyz_minimal(Path(path))
    from gicnet_runtime.io.initial import read_initial_conditions

    ic = read_initial_conditions(path)
    return ic.atomic_numbers, ic.positions, ic.velocities


def _read_extxyz_minimal(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames of ``species pos momenta masses`` extended XYZ (ASE units for momenta)."""
    lines = path.read_text().splitlines()
    numbers, positions, velocities, i = None, [], [], 0
    while i < len(lines) and lines[i].strip():
        n_atoms = int(lines[i])
        if "Properties=species:S:1:pos:R:3:momenta:R:3:masses:R:1" not in lines[i + 1]:
            raise ValueError(f"{path}: unexpected columns; install ase to read it")
        rows = [line.split() for line in lines[i + 2:i + 2 + n_atoms]]
        numbers = np.array([_SYMBOLS[r[0]] for r in rows])
        values = np.array([[float(x) for x in r[1:8]] for r in rows])
        positions.append(values[:, :3])
        velocities.append(ase_velocities_to_a_per_fs(values[:, 3:6] / values[:, 6:7]))
        i += 2 + n_atoms
    return numbers, np.array(positions), np.array(velocities)


def batch_of(positions: np.ndarray, velocities: np.ndarray,
             size: int) -> tuple[np.ndarray, np.ndarray]:
    """``size`` initial conditions from B0: the originals first, then rotated copies.

    positions: (B0, N, 3) Å; velocities: (B0, N, 3) Å/fs -> (size, N, 3) each.
    """
    index = np.arange(size) % positions.shape[0]
    pos, vel = positions[index].copy(), velocities[index].copy()
    rotations = _random_rotations(size, np.random.default_rng(BATCH_SEED))
    rotations[:positions.shape[0]] = np.eye(3)
    centre = pos.mean(axis=1, keepdims=True)
    return (pos - centre) @ rotations + centre, vel @ rotations


def _random_rotations(count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 3, 3) proper rotations from QR of Gaussian matrices."""
    q, r = np.linalg.qr(rng.standard_normal((count, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[:, None, :]
    q[np.linalg.det(q) < 0, :, 0] *= -1
    return q
