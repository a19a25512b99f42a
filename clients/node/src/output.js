'use strict';
/**
 * Writing frames: JSON (one file, every trajectory) or extended XYZ (one file per
 * trajectory, numbered like the Python runtime: out.extxyz -> out_000.extxyz, ... when there
 * are several), with ASE momenta so that ASE and gicnet's readers load them back.
 */
const fs = require('node:fs');
const path = require('node:path');
const {formatFrame} = require('./extxyz');
const {kineticEnergyEV} = require('./momentum');
const {ASE_TIME_UNIT_IN_FS} = require('./units');

/** Version of the JSON frames layout written here. */
const FRAMES_FORMAT_VERSION = 1;

const rows3 = (flat) => Array.from({length: flat.length / 3},
  (_, i) => [flat[3 * i], flat[3 * i + 1], flat[3 * i + 2]]);

/**
 * What a trajectory records besides its frames: propagate's per-segment choices (the member
 * each accepted segment used, the backtracks, the segments over the energy threshold, their
 * total-energy errors, eV) and failure; predict's member (-1: the ensemble mean) and spread_A.
 */
const TRAJECTORY_KEYS = ['segment_members', 'backtracks', 'segments_over_threshold',
  'segment_energy_error_eV', 'failure', 'member', 'spread_A'];

/**
 * The JSON document for trajectories of model `model` (see clients/node/README.md);
 * `settings`: how they were made ({segment_fs, restore_energy, energy_threshold_eV, dt_fs,
 * duration_fs} for propagate).
 */
function framesDocument(model, trajectories, command, settings = {}) {
  const desc = model.description;
  return {
    format: 'gicnet-frames', format_version: FRAMES_FORMAT_VERSION, command,
    model: model.path, model_files: model.paths, members: model.memberNames,
    tc_fs: desc.tc_fs, ...settings, atomic_numbers: desc.atomic_numbers,
    masses_amu: desc.masses_amu,
    units: {time: 'fs', positions: 'angstrom', velocities: 'angstrom/fs', energy: 'eV'},
    trajectories: trajectories.map((t) => {
      const out = {
        time_fs: t.time_fs,
        positions: t.positions.map(rows3),
        velocities: t.velocities.map(rows3),
        potential_energy_eV: t.potential_eV,
        kinetic_energy_eV: t.kinetic_eV
          || t.velocities.map((v) => kineticEnergyEV(v, desc.masses_amu)),
      };
      for (const key of TRAJECTORY_KEYS) {
        if (t[key] !== undefined && t[key] !== null) out[key] = t[key];
      }
      return out;
    }),
  };
}

/**
 * The first frame's `gicnet_info` of trajectory `b` in extended XYZ, as
 * gicnet_runtime.ase_formats writes it: the settings and the trajectory's records as
 * "_JSON {...}" (ASCII, non-ASCII escaped as Python's json.dumps does), or hex-encoded JSON
 * as `gicnet_info_hex` when the JSON holds a backslash (ASE's parser drops backslashes).
 */
function infoEntry(model, t, b, command, settings) {
  const info = {engine: 'gicnet-node', command, models: model.memberNames,
    tc_fs: model.description.tc_fs, ...settings};
  for (const key of TRAJECTORY_KEYS) {
    if (t[key] !== undefined && t[key] !== null) info[key] = t[key];
  }
  if (info.failure) info.failure = `trajectory ${b}: ${info.failure}`;
  const text = JSON.stringify(info).replace(/[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (text.includes('\\')) return {gicnet_info_hex: Buffer.from(text, 'utf8').toString('hex')};
  return {gicnet_info: `_JSON ${text}`};
}

/** One path per trajectory: `out` itself for one, stem_000.ext, ... for more. */
function numberedPaths(out, count) {
  if (count === 1) return [out];
  const ext = path.extname(out);
  const stem = out.slice(0, out.length - ext.length);
  return Array.from({length: count}, (_, i) => `${stem}_${String(i).padStart(3, '0')}${ext}`);
}

/**
 * Extended XYZ text of trajectory `t` (number `b`): momenta = masses · (v · ASE time unit), as
 * ASE; the first frame carries gicnet_info (infoEntry).
 */
function extxyzText(model, t, b, command, settings) {
  const desc = model.description;
  const masses = desc.masses_amu;
  return t.time_fs.map((time, f) => {
    const momenta = Float64Array.from(t.velocities[f],
      (v, j) => masses[Math.floor(j / 3)] * (v * ASE_TIME_UNIT_IN_FS));
    const info = {time_fs: time};
    if (t.potential_eV) info.energy = t.potential_eV[f];
    info.kinetic_energy_eV = kineticEnergyEV(t.velocities[f], masses);
    if (f === 0) Object.assign(info, infoEntry(model, t, b, command, settings));
    return formatFrame({numbers: desc.atomic_numbers, positions: t.positions[f], momenta,
      masses}, info);
  }).join('');
}

/** Write atomically (a temporary file next to the target, then a rename). */
function writeAtomic(file, text) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/**
 * Write the trajectories to `out` (.json or .extxyz/.xyz); returns the written paths.
 * `settings` go into the JSON document (see framesDocument).
 */
function writeFrames(model, trajectories, command, out, settings = {}) {
  const ext = path.extname(out).toLowerCase();
  if (ext === '.json') {
    writeAtomic(out, JSON.stringify(framesDocument(model, trajectories, command, settings)));
    return [out];
  }
  if (ext !== '.extxyz' && ext !== '.xyz') {
    throw new Error(`unknown output format ${JSON.stringify(ext)}: use .json or .extxyz`);
  }
  const paths = numberedPaths(out, trajectories.length);
  paths.forEach((p, b) => writeAtomic(p,
    extxyzText(model, trajectories[b], b, command, settings)));
  return paths;
}

module.exports = {framesDocument, numberedPaths, writeFrames};
