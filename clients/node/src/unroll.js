'use strict';
/**
 * The state of one trajectory while it is unrolled segment by segment, with the original
 * GICnet's one-segment-deep backtracking (gicnet_runtime/unroll.py).  Each segment is
 * predicted by every member (a Candidate); Unroll.offer decides:
 *
 * 1. the best member's total-energy error within the threshold: its prediction is accepted
 *    and its end state starts the next segment;
 * 2. otherwise the runtime steps back one segment: the previous segment switches to its
 *    next-ranked member whose own error is within the threshold, and the current segment is
 *    predicted again from that member's end state;
 * 3. when the previous segment has no such member left (or there is none), the best of all
 *    attempts at the current segment is accepted, the previous segment restored to the member
 *    that attempt started from, and the segment recorded as over the threshold;
 * 4. when every member of every attempt failed numerically, the trajectory stops.
 */
const {Ranking} = require('./ensemble');

/**
 * Every member's prediction of one segment of one trajectory (M members, F frames): times_fs
 * (F) fs from the trajectory's start; positions, velocities: [M][F] Float64Arrays of N·3 (Å,
 * Å/fs, momentum-restored); potentialEV: [M][F] eV or null (no energy); endPositions,
 * endVelocities: [M] Float64Arrays of N·3, the state that would start the next segment;
 * ranking: the members ranked by total-energy error; members: (M) ensemble index of each row
 * (cut to the member in use once the segment can no longer change); failure: why the best
 * member failed, when every member did, else null.
 */
class Candidate {
  constructor(fields) {
    Object.assign(this, fields);
  }

  /** Ensemble index of the member in use. */
  get member() {
    return this.members[this.ranking.member];
  }

  /** Total-energy error of the member in use, eV. */
  get errorEV() {
    return this.ranking.errorEV;
  }

  /** {times_fs, positions, velocities, potentialEV} of the member in use. */
  frames() {
    const m = this.ranking.member;
    return {times_fs: this.times_fs, positions: this.positions[m], velocities: this.velocities[m],
      potentialEV: this.potentialEV && this.potentialEV[m]};
  }

  /** The candidate cut down to the member in use (it can no longer change). */
  onlyMemberInUse() {
    const m = this.ranking.member;
    const pick = (rows) => rows && rows.slice(m, m + 1);
    return new Candidate({...this, positions: pick(this.positions),
      velocities: pick(this.velocities), potentialEV: pick(this.potentialEV),
      endPositions: pick(this.endPositions), endVelocities: pick(this.endVelocities),
      ranking: new Ranking(this.ranking.errorsEV.slice(m, m + 1)), members: pick(this.members)});
  }
}

/**
 * One trajectory being unrolled.  positions0 (N·3) Å, velocities0 (N·3) Å/fs: the initial
 * condition; momentum0 (3) amu·Å/fs, angular0 (3) amu·Å²/fs, com0 (3) Å: the conserved
 * targets; segment: the segment to predict next; accepted: accepted Candidates, in order;
 * backtracks: how often a previous segment switched member; overThreshold: indices of the
 * segments accepted above the energy threshold; failure: why it stopped early, or null.
 */
class Unroll {
  constructor(positions0, velocities0, momentum0, angular0, com0) {
    Object.assign(this, {positions0, velocities0, momentum0, angular0, com0});
    this.segment = 0;
    this.accepted = [];
    /** Attempts at the current segment: [rank of the previous segment's member, Candidate]. */
    this.attempts = [];
    this.backtracks = 0;
    this.overThreshold = [];
    this.failure = null;
  }

  /** {positions, velocities} (N·3 Float64Arrays, Å, Å/fs) where the next segment starts. */
  start() {
    if (!this.accepted.length) return {positions: this.positions0, velocities: this.velocities0};
    const last = this.accepted[this.accepted.length - 1];
    const m = last.ranking.member;
    return {positions: last.endPositions[m], velocities: last.endVelocities[m]};
  }

  /** Take a prediction of the current segment; true when a segment was accepted. */
  offer(candidate, thresholdEV) {
    const previous = this.accepted.length ? this.accepted[this.accepted.length - 1].ranking
      : null;
    if (candidate.ranking.errorEV <= thresholdEV) {
      this.accept(candidate);
      return true;
    }
    this.attempts.push([previous ? previous.rank : 0, candidate]);
    if (previous && previous.switchToNext(thresholdEV)) {
      this.backtracks += 1;
      return false;
    }
    let [rank, best] = this.attempts[0];
    for (const [r, c] of this.attempts) {
      if (c.ranking.errorEV < best.ranking.errorEV) [rank, best] = [r, c];
    }
    if (!Number.isFinite(best.ranking.errorEV)) {
      this.failure = best.failure;
      return false;
    }
    if (previous) previous.rank = rank;
    this.overThreshold.push(this.segment);
    this.accept(best);
    return true;
  }

  accept(candidate) {
    const last = this.accepted.length - 1;
    if (last >= 0) this.accepted[last] = this.accepted[last].onlyMemberInUse();
    this.accepted.push(candidate);
    this.attempts = [];
    this.segment += 1;
  }
}

module.exports = {Candidate, Unroll};
