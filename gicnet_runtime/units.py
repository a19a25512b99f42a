"""Unit constants.  gicnet works in Å, fs, Å/fs, amu and eV throughout.

Conversions happen only at file boundaries.  The constants follow CODATA 2014,
the set ASE uses by default, so that files written by ASE convert exactly.
"""

import math

_E_CHARGE_C = 1.6021766208e-19  # elementary charge (CODATA 2014), C
_AMU_KG = 1.660539040e-27  # atomic mass unit (CODATA 2014), kg
_KB_J_PER_K = 1.38064852e-23  # Boltzmann constant (CODATA 2014), J/K

#: 1 amu·Å²/fs² expressed in eV (kinetic energy of masses in amu moving in Å/fs).
AMU_A2_PER_FS2_IN_EV = _AMU_KG * 1e-20 / 1e-30 / _E_CHARGE_C

#: ASE's time unit, Å·sqrt(amu/eV), expressed in fs (≈ 10.18 fs); ``ase.units.fs == 1 / this``.
ASE_TIME_UNIT_IN_FS = 1e15 * 1e-10 * math.sqrt(_AMU_KG / _E_CHARGE_C)

#: Boltzmann constant, eV/K.
KB_EV_PER_K = _KB_J_PER_K / _E_CHARGE_C

EV_IN_KCAL_PER_MOL = 23.060548012069496  # 1 eV in kcal/mol, as ase.units (CODATA 2014)
#: 1 kcal/mol in eV.
KCAL_PER_MOL_IN_EV = 1 / EV_IN_KCAL_PER_MOL
#: 1 kJ/mol in eV (1 kcal = 4.184 kJ).
KJ_PER_MOL_IN_EV = KCAL_PER_MOL_IN_EV / 4.184
#: 1 Hartree in eV, as ase.units.Hartree (CODATA 2014).
HARTREE_IN_EV = 27.211386024367243
#: 1 bohr in Å (CODATA 2014).
BOHR_IN_A = 0.52917721067


def ase_velocities_to_a_per_fs(v_ase):
    """Velocities from ASE's unit (Å per ASE time unit) to Å/fs."""
    return v_ase / ASE_TIME_UNIT_IN_FS


def a_per_fs_to_ase_velocities(v_a_per_fs):
    """Velocities from Å/fs to ASE's unit (Å per ASE time unit)."""
    return v_a_per_fs * ASE_TIME_UNIT_IN_FS
