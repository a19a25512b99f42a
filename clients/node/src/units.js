'use strict';
/**
 * Unit constants (CODATA 2014, the set ASE uses), computed exactly as gicnet_runtime/units.py
 * does so that conversions agree bit for bit.  gicnet works in Å, fs, Å/fs, amu and eV.
 */
const E_CHARGE_C = 1.6021766208e-19; // elementary charge, C
const AMU_KG = 1.660539040e-27; // atomic mass unit, kg

/** 1 amu·Å²/fs² in eV (kinetic energy of masses in amu moving in Å/fs). */
const AMU_A2_PER_FS2_IN_EV = AMU_KG * 1e-20 / 1e-30 / E_CHARGE_C;
/** ASE's time unit, Å·sqrt(amu/eV), in fs (≈ 10.1805 fs). */
const ASE_TIME_UNIT_IN_FS = 1e15 * 1e-10 * Math.sqrt(AMU_KG / E_CHARGE_C);

/** 1 eV in kcal/mol, as ase.units (CODATA 2014) and gicnet_runtime/units.py. */
const EV_IN_KCAL_PER_MOL = 23.060548012069496;

module.exports = {AMU_A2_PER_FS2_IN_EV, ASE_TIME_UNIT_IN_FS, EV_IN_KCAL_PER_MOL};
