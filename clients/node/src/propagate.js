'use strict';
/**
 * Long trajectories, unrolled segment by segment exactly as gicnet_runtime/propagate.py does,
 * in segments of length L (0 < L <= tc; default the model's unroll_segment_fs, else tc), for
 * all trajectories of a batch at once and every member of the model (one or an ensemble):
 *
 * 1. every member predicts each trajectory's current segment at the output frames that fall
 *    in it (local times, clipped to [0, L]), then at those of the ENERGY_CHECKS_PER_SEGMENT
 *    check times L/10 ... L that are not already frames (rows padded with L to one width);
 * 2. every predicted frame's centre of mass is put back on its straight line
 *    com0 + p0/M · t and its velocities given back the initial linear momentum p0 and
 *    angular momentum L0 (float64, ./momentum.js);
 * 3. a member whose prediction is non-finite, has an atom more than EXPLOSION_MARGIN_A beyond
 *    the initial molecule's extent or faster than MAX_SPEED_A_PER_FS, failed;
 * 4. the members are ranked by total-energy error (./ensemble.js) and ./unroll.js accepts the
 *    segment, steps back one segment to the previous segment's next member, or stops the
 *    trajectory when every attempt failed;
 * 5. with energy restoration (on by default for models with energy) each member's end state
 *    first gets the trajectory's initial total energy back by scaling its stretch-and-bend
 *    velocities (./energyRestore.js), before it can start the next segment; the frames stay
 *    as predicted.  The model's unroll_restore_fraction of the deficit is put back, measured
 *    at the end or (unroll_restore_deficit "mean") as its mean over the check times.
 *
 * With the model's unroll_reversal_share above 0, step 1 predicts each segment from its
 * start corrected for the network's damping (./reversal.js).
 *
 * The reference total energy of a trajectory is the members' mean potential energy at t = 0
 * plus the initial kinetic energy; frame 0's potential energy is that of the member used for
 * the first segment.
 */
const mom = require('./momentum');
const {restoreKineticEnergy, stretchBendCoordinates} = require('./energyRestore');
const {defaultSegmentFs, restoreDeficit, restoreFraction, reversalShare} =
  require('./description');
const {correctedStarts, givenStartAtZero} = require('./reversal');
const {ENERGY_THRESHOLD_EV, Ranking, referenceEnergyEV, totalEnergyErrorEV} = require('./ensemble');
const {TIME_RTOL, formatG, frameTimes, segmentOf, unrollSegmentFs} = require('./timegrid');
const {Candidate, Unroll} = require('./unroll');

const ENERGY_CHECKS_PER_SEGMENT = 10;
/**
 * In runs of several trajectories every graph call gets a multiple of ROW_ALIGN rows (the
 * last row repeated), as gicnet_runtime/unroll/segment.py's aligned_run: onnxruntime's CPU
 * kernels give a row the same float32 numbers in any such batch, so a trajectory's numbers
 * do not depend on which others share its calls. A single trajectory's calls are not padded.
 */
const ROW_ALIGN = 4;

/** model.run for a run of `nTrajectories`, rows padded to ROW_ALIGN, outputs cut back. */
function alignedRun(model, nTrajectories) {
  const align = nTrajectories > 1 ? ROW_ALIGN : 1;
  return async (positions, velocities, times) => {
    const n = positions.length;
    const pad = (align - (n % align)) % align;
    if (!pad) return model.run(positions, velocities, times);
    const padded = (rows) => rows.concat(new Array(pad).fill(rows[n - 1]));
    const outs = await model.run(padded(positions), padded(velocities), padded(times));
    const k = times[0].length;
    const frame = model.description.n_atoms * 3;
    return outs.map((out) => Object.fromEntries(Object.entries(out).map(([name, data]) =>
      [name, data.subarray(0, n * k * (name === 'energy_t' ? 1 : frame))])));
  };
}
const EXPLOSION_MARGIN_A = 10.0;
const MAX_SPEED_A_PER_FS = 1.0;

/** Largest atom distance from the centre of mass, Å (NaN propagates, as numpy's max). */
function extentA(pos, masses) {
  const com = mom.centreOfMass(pos, masses);
  let extent = 0;
  for (let i = 0; i < masses.length; i++) {
    extent = Math.max(extent, Math.hypot(...[0, 1, 2].map((k) => pos[3 * i + k] - com[k])));
  }
  return extent;
}

/** Largest atom speed, Å/fs. */
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
 * One segment's local times to predict (propagate.py's _segment_times): its frames
 * (`framesFs`, fs from the segment's start, clipped to [0, L]), then the check times
 * (`checksFs`, the last one L = `segmentFs`) not already a frame within TIME_RTOL · L.
 * Returns {times (fs), nFrames, checks: the index of each check time, end: that of the time L}.
 */
function segmentTimes(framesFs, checksFs, segmentFs) {
  const frames = framesFs.map((t) => Math.min(Math.max(t, 0), segmentFs));
  const slack = TIME_RTOL * segmentFs;
  const extra = checksFs.filter((c) => !frames.some((t) => Math.abs(c - t) <= slack));
  const times = frames.concat(extra);
  const checks = checksFs.map((c) => times.findIndex((t) => Math.abs(t - c) <= slack));
  return {times, nFrames: frames.length, checks, end: checks[checks.length - 1]};
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
 * Unroll B trajectories together.  model: a Model (./model.js), one member or an ensemble;
 * state: {positions, velocities} (B Float64Arrays of N·3, Å and Å/fs); durationFs, dtFs:
 * length and frame spacing, fs; options: {segmentFs, restoreEnergy} (see unrollSettings) and
 * energyThresholdEV (largest acceptable total-energy error of a segment, eV; default
 * ENERGY_THRESHOLD_EV, 1 kcal/mol).  Returns B trajectories {time_fs, positions, velocities
 * (F Float64Arrays), potential_eV (F) or null, kinetic_eV (F), segment_members (S: the member
 * each accepted segment used), backtracks, segments_over_threshold (segment indices),
 * segment_energy_error_eV (S) or null without energy, failure (or null)}, as the Python
 * runtime's Trajectory and its info.
 */
async function propagate(model, state, durationFs, dtFs, options = {}) {
  const desc = model.description;
  const masses = Float64Array.from(desc.masses_amu);
  const thresholdEV = options.energyThresholdEV ?? ENERGY_THRESHOLD_EV;
  const settings = unrollSettings(desc, options);
  const perSegment = framesPerSegment(durationFs, dtFs, settings.segmentFs);
  if (!(thresholdEV > 0)) {
    throw new Error(`energy threshold must be positive, got ${thresholdEV} eV`);
  }
  const unrolls = state.positions.map((p, b) => {
    const v = state.velocities[b];
    return new Unroll(p, v, mom.linearMomentum(v, masses), mom.angularMomentum(p, v, masses),
      mom.centreOfMass(p, masses));
  });
  const run = alignedRun(model, state.positions.length);
  const potential0 = await initialPotential(model, state, run);
  const reference = potential0 && state.velocities.map(
    (v, b) => referenceEnergyEV(potential0.map((row) => row[b]), v, masses));
  const limits = state.positions.map((p) => extentA(p, masses) + EXPLOSION_MARGIN_A);
  const step = new Step(model, masses, settings.segmentFs, perSegment,
    settings.restoreEnergy ? stretchBendCoordinates(desc.ic_rows) : null, run);
  for (;;) {
    const active = unrolls.map((_, i) => i).filter(
      (i) => unrolls[i].failure === null && unrolls[i].segment < perSegment.length);
    if (!active.length) break;
    const candidates = await step.predict(active.map((i) => unrolls[i]),
      reference && active.map((i) => reference[i]), active.map((i) => limits[i]));
    active.forEach((i, a) => unrolls[i].offer(candidates[a], thresholdEV));
  }
  return unrolls.map((u, b) => trajectory(u, b, masses, potential0));
}

/**
 * Each member's potential energy at t = 0: [M][B] eV, or null for a model without energy;
 * throws for a non-finite one.
 */
async function initialPotential(model, state, run) {
  if (!model.description.has_energy) return null;
  const outs = await run(state.positions, state.velocities, state.positions.map(() => [0]));
  const potential = outs.map((out) => Array.from(out.energy_t));
  potential.forEach((row, m) => row.forEach((e0, b) => {
    if (!Number.isFinite(e0)) {
      throw new Error(`model ${model.memberNames[m]} gives a non-finite potential energy at `
        + `t = 0 for initial condition ${b}`);
    }
  }));
  return potential;
}

/** One batched prediction of the current segment of several trajectories, by every member. */
class Step {
  /**
   * masses (N) amu; segmentFs: L, fs; perSegment: each segment's frame times (fs);
   * restore: the coordinates energy restoration scales (stretchBendCoordinates), or null;
   * run: the model's graph call with the run's row padding (alignedRun).
   */
  constructor(model, masses, segmentFs, perSegment, restore, run) {
    Object.assign(this, {model, masses, segmentFs, perSegment, restore, run});
    const desc = model.description;
    this.restoration = {fraction: restoreFraction(desc), deficit: restoreDeficit(desc)};
    this.share = reversalShare(desc);
    const checks = Array.from({length: ENERGY_CHECKS_PER_SEGMENT},
      (_, k) => segmentFs * (k + 1) / ENERGY_CHECKS_PER_SEGMENT);
    this.layouts = perSegment.map((frames, s) => segmentTimes(
      frames.map((t) => t - s * segmentFs), checks, segmentFs));
  }

  /**
   * Every member's prediction of each trajectory's current segment: unrolls (A Unroll),
   * reference (A) eV or null (no energy), limits (A) Å (largest allowed extent).  Returns A
   * Candidates.
   */
  async predict(unrolls, reference, limits) {
    const layouts = unrolls.map((u) => this.layouts[u.segment]);
    const width = Math.max(...layouts.map((l) => l.times.length));
    const local = layouts.map((l) => l.times.concat(
      new Array(width - l.times.length).fill(this.segmentFs)));
    const starts = unrolls.map((u) => u.start());
    let outs;
    if (this.share > 0) {
      const corrected = await correctedStarts(this.run, starts, this.masses, this.segmentFs,
        this.share, reference);
      outs = givenStartAtZero(await this.run(corrected.map((c) => c.positions),
        corrected.map((c) => c.velocities), local), local, corrected, this.masses.length);
    } else {
      outs = await this.run(starts.map((s) => s.positions), starts.map((s) => s.velocities),
        local);
    }
    // per member m and row a: {positions, velocities (width frames), energy (width), error, reason}
    const rows = outs.map((out) => unrolls.map((u, a) => this.restored(out, a, width, local[a],
      u, reference && reference[a], limits[a])));
    return unrolls.map((u, a) => this.candidate(u, layouts[a], rows.map((r) => r[a]),
      reference && reference[a]));
  }

  /**
   * Row `a` (local times `local`, fs, `width` of them) of one member's output `out` for
   * trajectory `u`: centre of mass and momenta restored (float64; a row with any non-finite
   * value is zeroed first, as Python does), its total-energy error (eV; 0 without energy,
   * Infinity when failed) and why it failed ('' when it did not).
   */
  restored(out, a, width, local, u, referenceEV, limitA) {
    const masses = this.masses;
    const n3 = masses.length * 3;
    const block = (data, size) => data.subarray(a * width * size, (a + 1) * width * size);
    const rawPos = block(out.positions_t, n3);
    const rawVel = block(out.velocities_t, n3);
    const energy = referenceEV === null ? null : Array.from(block(out.energy_t, 1));
    const finite = rawPos.every(Number.isFinite) && rawVel.every(Number.isFinite)
      && (energy === null || energy.every(Number.isFinite));
    const total = mom.totalMass(masses);
    const t0 = u.segment * this.segmentFs;
    const positions = [];
    const velocities = [];
    local.forEach((tLocal, j) => {
      const frame = (raw) => (finite ? Float64Array.from(raw.subarray(j * n3, (j + 1) * n3))
        : new Float64Array(n3));
      const t = t0 + tLocal;
      const com = [0, 1, 2].map((c) => u.com0[c] + u.momentum0[c] / total * t);
      const pos = mom.restoreCentreOfMass(frame(rawPos), masses, com);
      positions.push(pos);
      velocities.push(mom.restoreMomentum(pos, frame(rawVel), masses, u.momentum0, u.angular0));
    });
    const reason = !finite ? 'non-finite prediction'
      : Math.max(...positions.map((p) => extentA(p, masses))) > limitA ? 'exploding geometry'
        : Math.max(...velocities.map(maxSpeed)) > MAX_SPEED_A_PER_FS
          ? `an atom faster than ${MAX_SPEED_A_PER_FS} Å/fs` : '';
    let error = energy === null ? 0 : totalEnergyErrorEV(energy, velocities, masses, referenceEV);
    if (reason) error = Infinity;
    return {positions, velocities, energy, error, reason};
  }

  /**
   * The kinetic energy (eV) restoration gives member row `r`'s end state: its own plus the
   * model's fraction of the total-energy deficit, at the end or its mean over the check
   * times (segment.py's _target_kinetic_eV).
   */
  targetKineticEV(r, layout, referenceEV) {
    const {fraction, deficit} = this.restoration;
    const endKinetic = mom.kineticEnergyEV(r.velocities[layout.end], this.masses);
    if (deficit === 'mean') {
      const mean = layout.checks.reduce((sum, j) => sum + referenceEV - r.energy[j]
        - mom.kineticEnergyEV(r.velocities[j], this.masses), 0) / layout.checks.length;
      return endKinetic + fraction * mean;
    }
    return fraction * (referenceEV - r.energy[layout.end]) + (1 - fraction) * endKinetic;
  }

  /**
   * The Candidate of trajectory `u` from every member's restored row `rows` (M): the frames,
   * the end states (energy-restored when asked), the ranking and, when every member failed,
   * why.
   */
  candidate(u, layout, rows, referenceEV) {
    const {nFrames, end} = layout;
    const endVelocities = rows.map((r) => {
      if (!this.restore || referenceEV === null) return r.velocities[end];
      const target = this.targetKineticEV(r, layout, referenceEV);
      return restoreKineticEnergy(r.positions[end], r.velocities[end], this.masses, this.restore,
        Number.isFinite(target) ? target : 0);
    });
    const ranking = new Ranking(rows.map((r) => r.error));
    let failure = null;
    if (!Number.isFinite(ranking.errorEV)) {
      const t0 = u.segment * this.segmentFs;
      failure = `${rows[ranking.member].reason} between t = ${formatG(t0)} and `
        + `${formatG(t0 + this.segmentFs)} fs`;
    }
    return new Candidate({
      times_fs: this.perSegment[u.segment],
      positions: rows.map((r) => r.positions.slice(0, nFrames)),
      velocities: rows.map((r) => r.velocities.slice(0, nFrames)),
      potentialEV: referenceEV === null ? null : rows.map((r) => r.energy.slice(0, nFrames)),
      endPositions: rows.map((r) => r.positions[end]), endVelocities,
      ranking, members: rows.map((_, m) => m), failure,
    });
  }
}

/**
 * One unrolled trajectory (propagate.py's _trajectory): the initial frame, then every accepted
 * segment's frames; frame 0's potential energy is that of the first segment's member.
 */
function trajectory(u, b, masses, potential0) {
  const parts = u.accepted.map((c) => c.frames());
  const first = u.accepted.length ? u.accepted[0].member : 0;
  const velocities = [u.velocities0].concat(...parts.map((p) => p.velocities));
  return {
    time_fs: [0].concat(...parts.map((p) => p.times_fs)),
    positions: [u.positions0].concat(...parts.map((p) => p.positions)),
    velocities,
    potential_eV: potential0 && [potential0[first][b]].concat(...parts.map((p) => p.potentialEV)),
    kinetic_eV: velocities.map((v) => mom.kineticEnergyEV(v, masses)),
    segment_members: u.accepted.map((c) => c.member),
    backtracks: u.backtracks,
    segments_over_threshold: u.overThreshold.slice(),
    segment_energy_error_eV: potential0 && u.accepted.map((c) => c.errorEV),
    failure: u.failure,
  };
}

module.exports = {
  ENERGY_CHECKS_PER_SEGMENT, EXPLOSION_MARGIN_A, MAX_SPEED_A_PER_FS, ROW_ALIGN, alignedRun,
  framesPerSegment, propagate, segmentTimes, unrollSettings,
};
