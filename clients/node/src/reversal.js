'use strict';
/**
 * Time-reversal correction of each segment's start, as gicnet_runtime/unroll/reversal.py
 * does: every member predicts the state at L from the start s (forward), then, from its own
 * end with the velocities reversed, the state another L on (backward, velocities reversed
 * back); d = s minus the members' mean round trip.  A trajectory whose k·d (k: the model's
 * unroll_reversal_share) moves an atom by more than MAX_SHIFT_A or changes its velocity by
 * more than MAX_SHIFT_A_PER_FS, or whose start's total energy (the members' mean potential
 * energy plus the kinetic energy) exceeds its reference by more than MAX_EXCESS_EV, is not
 * corrected in that segment; otherwise the segment is
 * predicted from s + k·d with d's rigid-body translation and rotation removed, and its frames
 * at local time 0 are the start as given.
 */
const mom = require('./momentum');
const {ENERGY_THRESHOLD_EV, referenceEnergyEV} = require('./ensemble');

const MAX_SHIFT_A = 0.03;
const MAX_SHIFT_A_PER_FS = 0.004;
const MAX_EXCESS_EV = ENERGY_THRESHOLD_EV;

/** Largest atom norm of k·d (N·3 values). */
function largestShift(d, share) {
  let largest = 0;
  for (let i = 0; i < d.length; i += 3) {
    largest = Math.max(largest, share * Math.hypot(d[i], d[i + 1], d[i + 2]));
  }
  return largest;
}

/**
 * Corrected starts of A trajectories.  run: the model's graph call (Model.run, or
 * ./propagate.js's alignedRun of it), one output per member; starts: A {positions,
 * velocities} (Float64Arrays of N·3); masses (N); segmentFs: L; share: k > 0; reference:
 * A reference total energies (eV), or null (no energy guard).  Returns A
 * {positions, velocities, applied, positions0, velocities0, potential0: M potential energies
 * (eV) of the given start, or null without energy}.
 */
async function correctedStarts(run, starts, masses, segmentFs, share, reference = null) {
  const n3 = masses.length * 3;
  const forward = await run(starts.map((s) => s.positions), starts.map((s) => s.velocities),
    starts.map(() => [0, segmentFs]));
  const frame = (data, a, k) => Float64Array.from(data.subarray((2 * a + k) * n3,
    (2 * a + k + 1) * n3));
  const ends = forward.map((out) => starts.map((_, a) => ({
    positions: frame(out.positions_t, a, 1), velocities: frame(out.velocities_t, a, 1)})));
  const backRows = ends.flat();
  const back = await run(backRows.map((e) => e.positions),
    backRows.map((e) => e.velocities.map((v) => -v)), backRows.map(() => [segmentFs]));
  const nRows = starts.length;
  return starts.map((s, a) => {
    const dPos = new Float64Array(n3);
    const dVel = new Float64Array(n3);
    back.forEach((out, m) => {
      const row = m * nRows + a;  // member m's backward leg from its own forward end
      for (let i = 0; i < n3; i++) {
        dPos[i] += s.positions[i] - out.positions_t[row * n3 + i];
        dVel[i] += s.velocities[i] + out.velocities_t[row * n3 + i];
      }
    });
    for (let i = 0; i < n3; i++) {  // the members' mean, summed first as numpy does
      dPos[i] /= back.length;
      dVel[i] /= back.length;
    }
    const potential0 = forward[0].energy_t === undefined ? null
      : forward.map((out) => out.energy_t[2 * a]);
    const given = {positions0: s.positions, velocities0: s.velocities, potential0};
    const hot = reference !== null && potential0 !== null
      && referenceEnergyEV(potential0, s.velocities, masses) - reference[a] > MAX_EXCESS_EV;
    if (hot || largestShift(dPos, share) > MAX_SHIFT_A
      || largestShift(dVel, share) > MAX_SHIFT_A_PER_FS) {
      return {positions: s.positions, velocities: s.velocities, applied: false, ...given};
    }
    const zero = [0, 0, 0];
    const scale = (d) => d.map((x) => share * x);
    const shiftPos = mom.restoreMomentum(s.positions, scale(dPos), masses, zero, zero);
    const shiftVel = mom.restoreMomentum(s.positions, scale(dVel), masses, zero, zero);
    return {positions: s.positions.map((x, i) => x + shiftPos[i]),
      velocities: s.velocities.map((x, i) => x + shiftVel[i]), applied: true, ...given};
  });
}

/**
 * Graph outputs (one per member, B·K frames) predicted from corrected starts with the frames
 * at local time 0 set back to the starts as given (positions, velocities, and energy when
 * the start carries one).  local: B arrays of K times, fs.  Changes `outs` in place.
 */
function givenStartAtZero(outs, local, corrected, nAtoms) {
  const n3 = nAtoms * 3;
  const width = local[0].length;
  local.forEach((times, a) => times.forEach((t, j) => {
    if (t !== 0) return;
    const c = corrected[a];
    outs.forEach((out, m) => {
      out.positions_t.set(c.positions0, (a * width + j) * n3);
      out.velocities_t.set(c.velocities0, (a * width + j) * n3);
      if (c.potential0 !== null && out.energy_t !== undefined) {
        out.energy_t[a * width + j] = c.potential0[m];
      }
    });
  }));
  return outs;
}

module.exports = {MAX_EXCESS_EV, MAX_SHIFT_A, MAX_SHIFT_A_PER_FS, correctedStarts,
  givenStartAtZero};
