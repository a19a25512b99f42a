'use strict';
/**
 * Initial conditions from files: extended XYZ with an ASE `momenta` column (every frame one
 * initial condition) or JSON.  The result is B states in the project's units:
 * {positions: [B] Float64Array(N·3) Å, velocities: [B] Float64Array(N·3) Å/fs, numbers}.
 *
 * ASE stores momenta in amu·Å per ASE time unit; velocities are momenta / masses (the
 * `masses` column, else the model's masses) / ASE_TIME_UNIT_IN_FS, in that order, exactly as
 * gicnet_runtime/initial.py converts them.
 *
 * JSON: {"positions": (N,3) or (B,N,3) Å, "velocities": same shape Å/fs,
 *        "atomic_numbers": (N) optional}.
 */
const fs = require('node:fs');
const path = require('node:path');
const {frameNumbers, readExtxyz} = require('./extxyz');
const {SYMBOLS} = require('./elements');
const {ASE_TIME_UNIT_IN_FS} = require('./units');

/** File looked for next to the model when no initial conditions are given. */
const DEFAULT_INIT_NAME = 'initial.extxyz';
/** Largest difference between a mass stated in the file and the model's, amu. */
const MASS_TOLERANCE_AMU = 0.01;

/** Read initial conditions from `file` (.json, else extended XYZ) for model `desc`. */
function readInitial(file, desc) {
  if (!fs.existsSync(file)) throw new Error(`initial-conditions file not found: ${file}`);
  const text = fs.readFileSync(file, 'utf8');
  const state = path.extname(file).toLowerCase() === '.json'
    ? fromJson(JSON.parse(text), desc, file) : fromExtxyz(text, desc, file);
  checkModel(state, desc, file);
  return state;
}

function fromExtxyz(text, desc, file) {
  const frames = readExtxyz(text, file);
  const numbers = frameNumbers(frames[0]);
  checkAtoms(numbers, desc, file);
  const positions = [];
  const velocities = [];
  frames.forEach((frame, f) => {
    const z = frameNumbers(frame);
    if (z.length !== numbers.length || z.some((x, a) => x !== numbers[a])) {
      throw new Error(`${file}: frame ${f} has different atoms from frame 0`);
    }
    if (!frame.arrays.pos) throw new Error(`${file}: frame ${f} has no positions (a 'pos' column)`);
    if (!frame.arrays.momenta) {
      throw new Error(`${file}: frame ${f} has no velocities (an extended XYZ 'momenta' column)`);
    }
    const masses = frame.arrays.masses || desc.masses_amu;
    const wrong = masses.findIndex(
      (m, a) => !(Math.abs(m - desc.masses_amu[a]) <= MASS_TOLERANCE_AMU));
    if (wrong >= 0) {
      throw new Error(`${file}: atom ${wrong + 1} has mass ${masses[wrong]} amu in the initial `
        + `conditions but ${desc.masses_amu[wrong]} amu in the model`);
    }
    positions.push(Float64Array.from(frame.arrays.pos.flat()));
    velocities.push(Float64Array.from(frame.arrays.momenta.flat(),
      (p, j) => p / masses[Math.floor(j / 3)] / ASE_TIME_UNIT_IN_FS));
  });
  return {positions, velocities, numbers};
}

function fromJson(data, desc, file) {
  const batch = (value, name) => {
    if (!Array.isArray(value)) throw new Error(`${file}: "${name}" must be an array`);
    return Array.isArray(value[0]?.[0]) ? value : [value];
  };
  const pos = batch(data.positions, 'positions');
  const vel = batch(data.velocities, 'velocities');
  if (pos.length !== vel.length) {
    throw new Error(`${file}: ${pos.length} sets of positions but ${vel.length} of velocities`);
  }
  const flat = (rows, name) => {
    if (rows.some((r) => !Array.isArray(r) || r.length !== 3)) {
      throw new Error(`${file}: "${name}" rows must hold three numbers`);
    }
    return Float64Array.from(rows.flat());
  };
  return {positions: pos.map((p) => flat(p, 'positions')),
    velocities: vel.map((v) => flat(v, 'velocities')),
    numbers: data.atomic_numbers || desc.atomic_numbers};
}

/** Throw unless the atoms are the model's, in the model's order. */
function checkAtoms(numbers, desc, file) {
  if (numbers.length !== desc.n_atoms) {
    throw new Error(`${file}: the initial conditions have ${numbers.length} atoms, `
      + `the model ${desc.n_atoms}`);
  }
  const wrong = numbers.findIndex((z, a) => z !== desc.atomic_numbers[a]);
  if (wrong >= 0) {
    throw new Error(`${file}: atom ${wrong + 1} is ${SYMBOLS[numbers[wrong]]} in the `
      + `initial conditions but ${SYMBOLS[desc.atomic_numbers[wrong]]} in the model `
      + '(atom order must match the model\'s)');
  }
}

/** Throw unless the atoms are the model's and every state has N finite positions and velocities. */
function checkModel(state, desc, file) {
  const n = desc.n_atoms;
  checkAtoms(state.numbers, desc, file);
  for (const [name, list] of [['positions', state.positions], ['velocities', state.velocities]]) {
    if (list.some((x) => x.length !== 3 * n)) {
      throw new Error(`${file}: ${name} must hold ${n} atoms`);
    }
    if (list.some((x) => x.some((v) => !Number.isFinite(v)))) {
      throw new Error(`${file}: ${name} contain NaN or inf`);
    }
  }
}

module.exports = {DEFAULT_INIT_NAME, readInitial};
