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
 * The JSON document for trajectories of model `model` (see clients/node/README.md);
 * `settings`: how they were made ({segment_fs, restore_energy} for propagate).
 */
function framesDocument(model, trajectories, command, settings = {}) {
  const desc = model.description;
  return {
    format: 'gicnet-frames', format_version: FRAMES_FORMAT_VERSION, command,
    model: model.path, tc_fs: desc.tc_fs, ...settings, atomic_numbers: desc.atomic_numbers,
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
      if (t.segment_energy_error_eV) out.segment_energy_error_eV = t.segment_energy_error_eV;
      if (t.failure) out.failure = t.failure;
      return out;
    }),
  };
}

/** One path per trajectory: `out` itself for one, stem_000.ext, ... for more. */
function numberedPaths(out, count) {
  if (count === 1) return [out];
  const ext = path.extname(out);
  const stem = out.slice(0, out.length - ext.length);
  return Array.from({length: count}, (_, i) => `${stem}_${String(i).padStart(3, '0')}${ext}`);
}

/** Extended XYZ text of one trajectory: momenta = masses · (v · ASE time unit), as ASE. */
function extxyzText(desc, t) {
  const masses = desc.masses_amu;
  return t.time_fs.map((time, f) => {
    const momenta = Float64Array.from(t.velocities[f],
      (v, j) => masses[Math.floor(j / 3)] * (v * ASE_TIME_UNIT_IN_FS));
    const info = {time_fs: time};
    if (t.potential_eV) info.energy = t.potential_eV[f];
    info.kinetic_energy_eV = kineticEnergyEV(t.velocities[f], masses);
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
  paths.forEach((p, b) => writeAtomic(p, extxyzText(model.description, trajectories[b])));
  return paths;
}

module.exports = {framesDocument, numberedPaths, writeFrames};
