"""Element data the runtime needs without ASE: symbols and covalent radii.

The covalent radii are those of B. Cordero et al., Dalton Trans. 2008, 2832 (Z = 1..96,
sp3 carbon; the table ASE ships as ``ase.data.covalent_radii``, which the training side
uses to build IC definitions, :mod:`gicnet_train.icbuild`).  Beyond Z = 96 there is no
value (NaN).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Element symbols by atomic number (index 0 unused).
ELEMENT_SYMBOLS = tuple(
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga "
    "Ge As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd "
    "Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac "
    "Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts "
    "Og".split())

#: Covalent radii by atomic number, Å (index 0 unused; Cordero 2008, Z = 1..96).
COVALENT_RADII_A = np.array([np.nan] + [float(r) for r in (
    "0.31 0.28 1.28 0.96 0.84 0.76 0.71 0.66 0.57 0.58 1.66 1.41 1.21 1.11 1.07 1.05 1.02 "
    "1.06 2.03 1.76 1.70 1.60 1.53 1.39 1.39 1.32 1.26 1.24 1.32 1.22 1.22 1.20 1.19 1.20 "
    "1.20 1.16 2.20 1.95 1.90 1.75 1.64 1.54 1.47 1.46 1.42 1.39 1.45 1.44 1.42 1.39 1.39 "
    "1.38 1.39 1.40 2.44 2.15 2.07 2.04 2.03 2.01 1.99 1.98 1.98 1.96 1.94 1.92 1.92 1.89 "
    "1.90 1.87 1.87 1.75 1.70 1.62 1.51 1.44 1.41 1.36 1.36 1.32 1.45 1.46 1.48 1.40 1.50 "
    "1.50 2.60 2.21 2.15 2.06 2.00 1.96 1.90 1.87 1.80 1.69").split()])


def symbol(z: int) -> str:
    """The element symbol of atomic number ``z`` (``Z=200`` beyond the table)."""
    return ELEMENT_SYMBOLS[z] if 0 < z < len(ELEMENT_SYMBOLS) else f"Z={z}"


def atom_labels(atomic_numbers: Sequence[int]) -> tuple[str, ...]:
    """Chemists' labels of the atoms, element and 1-based index: ``("C1", "C2", "O3", ...)``."""
    return tuple(f"{symbol(int(z))}{k + 1}" for k, z in enumerate(atomic_numbers))


def covalent_radii_A(atomic_numbers: Sequence[int]) -> np.ndarray:
    """(N,) covalent radii, Å (NaN for elements without a value)."""
    z = np.asarray(atomic_numbers, dtype=np.int64)
    inside = (z > 0) & (z < COVALENT_RADII_A.size)
    return np.where(inside, COVALENT_RADII_A[np.where(inside, z, 0)], np.nan)
