'use strict';
/**
 * Time grids, fs, as gicnet_runtime/timegrid.py: a trajectory is unrolled in segments of
 * length L (0 < L <= tc) and segment s covers (s·L, (s+1)·L]; frames are at k·dt up to the
 * duration; frame 0 is the initial condition (segment -1) and a frame exactly on a boundary
 * is the end of the earlier segment.
 */

/** Relative slack for rounding in time arithmetic. */
const TIME_RTOL = 1e-9;

/** Times from "start:stop:step" (stop included) or "t1,t2,...", fs. */
function parseTimes(spec) {
  const text = String(spec).trim();
  if (text.includes(':')) {
    const [start, stop, step] = text.split(':').map(Number);
    if (!(step > 0) || !Number.isFinite(step)) {
      throw new Error(`time step must be positive: ${spec}`);
    }
    if (!(stop >= start)) throw new Error(`time range ${spec} is empty`);
    const count = Math.floor((stop - start) / step * (1 + TIME_RTOL)) + 1;
    return Array.from({length: count}, (_, k) => start + step * k);
  }
  const times = text.split(',').filter((x) => x.trim()).map(Number);
  if (!times.length || times.some(Number.isNaN)) {
    throw new Error(`cannot read times ${JSON.stringify(spec)}: give start:stop:step or t1,t2,...`);
  }
  return times;
}

/** Output frame times 0, dt, 2·dt, ... <= duration, fs. */
function frameTimes(durationFs, dtFs) {
  for (const [name, value] of [['duration', durationFs], ['dt', dtFs]]) {
    if (!(Number.isFinite(value) && value > 0)) {
      throw new Error(`${name} must be a positive number, got ${value}`);
    }
  }
  const count = Math.floor(durationFs / dtFs * (1 + TIME_RTOL)) + 1;
  return Array.from({length: count}, (_, k) => dtFs * k);
}

/**
 * `segmentFs`, the length of the segments a trajectory is unrolled in, checked to be positive
 * and at most the model's tc (whose predictions it uses), fs.
 */
function unrollSegmentFs(tcFs, segmentFs) {
  if (!(Number.isFinite(segmentFs) && segmentFs > 0 && segmentFs <= tcFs * (1 + TIME_RTOL))) {
    throw new Error(`segment length must lie in (0, ${formatG(tcFs)}] fs (the model's tc), `
      + `got ${formatG(segmentFs)} fs`);
  }
  return Math.min(segmentFs, tcFs);
}

/** Segment index of a time, fs, for segments of `segmentFs`; -1 for t = 0 (the initial frame). */
function segmentOf(timeFs, segmentFs) {
  const scaled = timeFs / segmentFs;
  if (scaled <= TIME_RTOL) return -1;
  return Math.ceil(scaled * (1 - TIME_RTOL) - TIME_RTOL) - 1;
}

/** A time or length for messages, like Python's format(x, 'g'): 6 significant digits. */
function formatG(value) {
  return Number.isFinite(value) ? String(Number(value.toPrecision(6))) : String(value);
}

module.exports = {TIME_RTOL, formatG, frameTimes, parseTimes, segmentOf, unrollSegmentFs};
