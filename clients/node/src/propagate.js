'use strict';
/**
 * Long trajectories from one model, unrolled segment by segment exactly as
 * gicnet_runtime/propagate.py does for a single member, in segments of length L
 * (0 < L <= tc; default the model's unroll_segment_fs, else tc):
 *
 * 1. per segment, the graph is asked for ENERGY_CHECKS_PER_SEGMENT check times L/10 ... L,
 *    then the output frames that fall in the segment (local times, clipped to [0, L]);
 * 2. every predicted frame's centre of mass is put back on its straight line
 *    com0 + p0/M · t and its velocities given back the initial linear momentum p0 and
 *    angular momentum L0 (float64, ./momentum.js);
 * 3. the restored state at t = L (the last check) starts the next segment, with energy
 *    restoration (on by default for models with energy) first giving its velocities back
 *    the initial total energy by scaling their stretch-and-bend part (./energyRestore.js);
 *    the frames stay as predicted;
 * 4. a non-finite prediction, an atom more than EXPLOSION_MARGIN_A beyond the initial
 *    molecule's extent or faster than MAX_SPEED_A_PER_FS stops that trajectory.
 *
 * A single model has no member to switch to, so each segment is accepted whatever its
 * total-energy error (which is reported, as in the Python runtime's info).
 */
const mom = require('./momentum');
const {restoreKineticEnergy, stretchBendCoordinates} = require('./energyRestore');
const {defaultSegmentFs} = require('./description');
const {formatG, frameTimes, segmentOf, unrollSegmentFs} = require('./timegrid');

const ENERGY_CHECKS_PER_SEGMENT = 10;
const EXPLOSION_MARGIN_A = 10.0;
const MAX_SPEED_A_PER_FS = 1.0;

/** Largest atom distance from the centre of mass, Å. */
function extentA(pos, masses) {
  const com = mom.centreOfMass(pos, masses);
  let extent = 0;
  for (let i = 0; i < masses.length; i++) {
    extent = Math.max(extent, Math.hypot(...[0, 1, 2].map((k) => pos[3 * i + k] - com[k])));
  }
  return extent;
}

function maxSpeed(vel) {
  let speed = 0;
  for (let i = 0; i < vel.length; i += 3) {
    speed = Math.max(speed, Math.hypot(vel[i], vel[i + 1], vel[i + 2]));
  }
  return speed;
}

/**
 * Output frame times per segment of `segmentFs`: [segment] -> times (fs from the trajectory's
 * start).
 */
function framesPerSegment(durationFs, dtFs, segmentFs) {
  const frames = frameTimes(durationFs, dtFs);
  if (frames.length < 2) {
    throw new Error(`dt ${dtFs} fs is longer than the duration ${durationFs} fs`);
  }
  const segments = frames.map((t) => segmentOf(t, segmentFs));
  const count = segments[segments.length - 1] + 1;
  return Array.from({length: count}, (_, s) => frames.filter((_t, f) => segments[f] === s));
}

/**
 * How to unroll with model description `desc`: segmentFs (fs, undefined: the model's
 * unroll_segment_fs, else tc) checked to lie in (0, tc]; restoreEnergy (undefined: whether
 * the model has energy), refused for a model without energy.  Returns {segmentFs,
 * restoreEnergy}.
 */
function unrollSettings(desc, {segmentFs, restoreEnergy} = {}) {
  const length = unrollSegmentFs(desc.tc_fs, segmentFs ?? defaultSegmentFs(desc));
  if (restoreEnergy && !desc.has_energy) {
    throw new Error('energy restoration needs a model with an energy output');
  }
  return {segmentFs: length, restoreEnergy: restoreEnergy ?? desc.has_energy};
}

/**
 * Unroll B trajectories together.  state: {positions, velocities} (B Float64Arrays of N·3,
 * Å and Å/fs); durationFs, dtFs: length and frame spacing, fs; options: {segmentFs,
 * restoreEnergy} (see unrollSettings).  Returns B trajectories {time_fs, positions,
 * velocities (F Float64Arrays), potential_eV (F) or null, kinetic_eV (F),
 * segment_energy_error_eV, failure}.
 */
async function propagate(model, state, durationFs, dtFs, options = {}) {
  const masses = Float64Array.from(model.description.masses_amu);
  const settings = unrollSettings(model.description, options);
  const length = settings.segmentFs;
  const perSegment = framesPerSegment(durationFs, dtFs, length);
  const checks = Array.from({length: ENERGY_CHECKS_PER_SEGMENT},
    (_, k) => length * (k + 1) / ENERGY_CHECKS_PER_SEGMENT);
  const restore = settings.restoreEnergy ? stretchBendCoordinates(model.description.ic_rows)
    : null;
  const trajectories = state.positions.map((p, b) => start(p, state.velocities[b], masses));
  await initialPotential(model, state, trajectories, masses);
  for (let s = 0; s < perSegment.length; s++) {
    const active = trajectories.filter((t) => t.failure === null);
    if (!active.length) break;
    const t0 = s * length;
    const local = checks.concat(perSegment[s].map((t) => Math.min(Math.max(t - t0, 0), length)));
    const out = await model.run(active.map((t) => t.startPositions),
      active.map((t) => t.startVelocities), active.map(() => local));
    active.forEach((t, a) => accept(t, restoredFrames(out, a, local, t0, t),
      {t0, t1: t0 + length}, perSegment[s], restore));
  }
  return trajectories.map(finish);
}

function start(positions, velocities, masses) {
  return {
    time_fs: [0], positions: [positions], velocities: [velocities], potential_eV: null,
    momentum0: mom.linearMomentum(velocities, masses),
    angular0: mom.angularMomentum(positions, velocities, masses),
    com0: mom.centreOfMass(positions, masses),
    limitA: extentA(positions, masses) + EXPLOSION_MARGIN_A,
    startPositions: positions, startVelocities: velocities,
    referenceEV: null, segment_energy_error_eV: [], failure: null, masses,
  };
}

/** Potential energy at t = 0 (frame 0) and the reference total energy, per trajectory. */
async function initialPotential(model, state, trajectories, masses) {
  if (!model.description.has_energy) return;
  const out = await model.run(state.positions, state.velocities, state.positions.map(() => [0]));
  trajectories.forEach((t, b) => {
    const e0 = out.energy_t[b];
    if (!Number.isFinite(e0)) {
      throw new Error('the model gives a non-finite potential energy at t = 0 for initial '
        + `condition ${b}`);
    }
    t.potential_eV = [e0];
    t.referenceEV = e0 + mom.kineticEnergyEV(t.velocities[0], masses);
  });
}

/**
 * Row `a` of one graph call (local times `local`, segment start t0Fs) for trajectory `traj`:
 * K frames {positions, velocities (float64, centre of mass and momenta restored), energy,
 * finite}.
 */
function restoredFrames(out, a, local, t0Fs, traj) {
  const {masses, momentum0, angular0, com0} = traj;
  const n3 = masses.length * 3;
  const k = local.length;
  const total = mom.totalMass(masses);
  return local.map((tLocal, j) => {
    const at = (a * k + j) * n3;
    const rawPos = Float64Array.from(out.positions_t.subarray(at, at + n3));
    const rawVel = Float64Array.from(out.velocities_t.subarray(at, at + n3));
    const t = t0Fs + tLocal;
    const com = [0, 1, 2].map((c) => com0[c] + momentum0[c] / total * t);
    const positions = mom.restoreCentreOfMass(rawPos, masses, com);
    const velocities = mom.restoreMomentum(positions, rawVel, masses, momentum0, angular0);
    const energy = out.energy_t ? out.energy_t[a * k + j] : null;
    const finite = [rawPos, rawVel].every((x) => x.every(Number.isFinite))
      && (energy === null || Number.isFinite(energy));
    return {positions, velocities, energy, finite};
  });
}

/**
 * Take the segment's frames (the checks, then one per time of `frameTimesFs`) into
 * trajectory `t` and set the start of its next segment, or stop it with the reason.
 * span: {t0, t1}, the segment's interval, fs; restore: the coordinates energy restoration
 * scales (stretchBendCoordinates), or null for no restoration.
 */
function accept(t, frames, span, frameTimesFs, restore) {
  const reason = failureOf(frames, t);
  if (reason) {
    t.failure = `${reason} between t = ${formatG(span.t0)} and ${formatG(span.t1)} fs`;
    return;
  }
  if (t.referenceEV !== null) {
    const errors = frames.map(
      (f) => Math.abs(f.energy + mom.kineticEnergyEV(f.velocities, t.masses) - t.referenceEV));
    t.segment_energy_error_eV.push(Math.max(...errors));
  }
  const nChecks = ENERGY_CHECKS_PER_SEGMENT;
  frameTimesFs.forEach((time, j) => {
    const f = frames[nChecks + j];
    t.time_fs.push(time);
    t.positions.push(f.positions);
    t.velocities.push(f.velocities);
    if (t.potential_eV) t.potential_eV.push(f.energy);
  });
  const end = frames[nChecks - 1];
  t.startPositions = end.positions;
  // an accepted segment's energies are finite (failureOf), so the target is too
  t.startVelocities = restore
    ? restoreKineticEnergy(end.positions, end.velocities, t.masses, restore,
      t.referenceEV - end.energy)
    : end.velocities;
}

function failureOf(frames, t) {
  if (frames.some((f) => !f.finite)) return 'non-finite prediction';
  if (frames.some((f) => extentA(f.positions, t.masses) > t.limitA)) return 'exploding geometry';
  if (frames.some((f) => maxSpeed(f.velocities) > MAX_SPEED_A_PER_FS)) {
    return `an atom faster than ${MAX_SPEED_A_PER_FS} Å/fs`;
  }
  return null;
}

function finish(t) {
  return {
    time_fs: t.time_fs, positions: t.positions, velocities: t.velocities,
    potential_eV: t.potential_eV,
    kinetic_eV: t.velocities.map((v) => mom.kineticEnergyEV(v, t.masses)),
    segment_energy_error_eV: t.segment_energy_error_eV, failure: t.failure,
  };
}

module.exports = {ENERGY_CHECKS_PER_SEGMENT, framesPerSegment, propagate, unrollSettings};
