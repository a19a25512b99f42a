'use strict';
/**
 * Choosing among ensemble members by total-energy conservation (gicnet_runtime/ensemble.py).
 *
 * For every segment each member is ranked by the segment's total-energy error: the largest
 * |E_pot(t) + E_kin(t) − E_ref| over the segment's predicted times, with E_ref the
 * trajectory's total energy at t = 0 (the members' mean potential energy at the initial
 * geometry plus the initial kinetic energy).  A member whose prediction failed ranks last with
 * an infinite error; models without energy rank every working member equal (error 0), so the
 * first working member is used.
 */
const {kineticEnergyEV} = require('./momentum');
const {EV_IN_KCAL_PER_MOL} = require('./units');

/** Default bound on a segment's total-energy error, eV: 1 kcal/mol (the original GICnet's). */
const ENERGY_THRESHOLD_EV = 1.0 / EV_IN_KCAL_PER_MOL;

/**
 * Total energy at t = 0, eV: the members' mean potential energy `potentials0EV` (M, eV) plus
 * the kinetic energy of `velocities0` (N·3, Å/fs); masses (N) amu.
 */
function referenceEnergyEV(potentials0EV, velocities0, masses) {
  const sum = potentials0EV.reduce((acc, e) => acc + e, 0);
  return sum / potentials0EV.length + kineticEnergyEV(velocities0, masses);
}

/**
 * Largest total-energy error of one member's frames, eV; Infinity when anything is not finite.
 * potentialsEV: (K) eV; velocities: K Float64Arrays of N·3, Å/fs; masses (N) amu;
 * referenceEV: the trajectory's total energy, eV.
 */
function totalEnergyErrorEV(potentialsEV, velocities, masses, referenceEV) {
  let error = 0;
  for (let k = 0; k < potentialsEV.length; k++) {
    const deviation = Math.abs(potentialsEV[k] + kineticEnergyEV(velocities[k], masses)
      - referenceEV);
    if (!(deviation <= error)) error = deviation;  // NaN sticks, as in numpy's max
    if (Number.isNaN(error)) break;
  }
  return Number.isFinite(error) ? error : Infinity;
}

/** One segment's members ranked by error (eV; Infinity: failed), and which is in use. */
class Ranking {
  /** errorsEV: (M) each member's total-energy error, eV. */
  constructor(errorsEV) {
    this.errorsEV = Float64Array.from(errorsEV);
    /** Member indices by increasing error, ties in member order (a stable sort). */
    this.order = Array.from(this.errorsEV.keys()).sort((a, b) => {
      const [ea, eb] = [this.errorsEV[a], this.errorsEV[b]];
      return ea < eb ? -1 : ea > eb ? 1 : 0;
    });
    /** Position in `order` of the member in use (0: the best). */
    this.rank = 0;
  }

  /** Index (into errorsEV) of the member in use. */
  get member() {
    return this.order[this.rank];
  }

  /** Total-energy error of the member in use, eV. */
  get errorEV() {
    return this.errorsEV[this.member];
  }

  /** Use the next member in the ranking whose error is within the threshold, if any. */
  switchToNext(thresholdEV) {
    for (let rank = this.rank + 1; rank < this.order.length; rank++) {
      if (this.errorsEV[this.order[rank]] <= thresholdEV) {
        this.rank = rank;
        return true;
      }
    }
    return false;
  }
}

module.exports = {ENERGY_THRESHOLD_EV, Ranking, referenceEnergyEV, totalEnergyErrorEV};
