'use strict';
/**
 * Exported GICnet models opened with onnxruntime-node (CPU), checked against the ONNX contract
 * (docs/onnx-contract.md), with their descriptions read from the files' metadata.
 *
 * A model is one or more files, each a single network (outputs (B, K, N, 3) and (B, K)) or an
 * ensemble file (format version 2, `gicnet.n_members` = M: outputs (M, B, K, N, 3) and
 * (M, B, K)); a folder stands for every *.onnx in it, in file-name order.  The model's members
 * are the files' members in that order, as gicnet_runtime.load_model takes them.
 */
const fs = require('node:fs');
const path = require('node:path');
const ort = require('onnxruntime-node');
const {metadataFromBytes} = require('./onnxmeta');
const {membersIn, parseDescription} = require('./description');
const {referenceEnergyEV, totalEnergyErrorEV} = require('./ensemble');
const {TIME_RTOL, formatG} = require('./timegrid');

const INPUTS = ['positions', 'velocities', 'times'];
const OUTPUTS = ['positions_t', 'velocities_t'];
const ENERGY_OUTPUT = 'energy_t';
/** How an ensemble answers predict (gicnet_runtime.model.ENSEMBLE_MODES). */
const ENSEMBLE_MODES = ['mean', 'select'];
/** Relative tolerance of the members' masses agreement (as gicnet_runtime.model._check_same). */
const MASSES_RTOL = 1e-6;

/** One .onnx file: a single network or an ensemble file of `nMembers` members. */
class ModelFile {
  /** Use {@link ModelFile.load}. */
  constructor(file, session, description) {
    this.path = file;
    this.session = session;
    this.description = description;
    this.nMembers = membersIn(description);
    this.outputs = OUTPUTS.concat(description.has_energy ? [ENERGY_OUTPUT] : []);
  }

  /** Open the .onnx file at `file`; `threads`: onnxruntime intra-op threads (optional). */
  static async load(file, {threads} = {}) {
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
      throw new Error(`model file not found: ${file}`);
    }
    const bytes = fs.readFileSync(file);
    let description;
    try {
      description = parseDescription(metadataFromBytes(bytes));
    } catch (err) {
      throw new Error(`${path.basename(file)}: ${err.message}`);
    }
    const options = {executionProviders: ['cpu']};
    if (threads) Object.assign(options, {intraOpNumThreads: threads, interOpNumThreads: 1});
    let session;
    try {
      session = await ort.InferenceSession.create(bytes, options);
    } catch (err) {
      throw new Error(`cannot load model ${file}: ${err.message}`);
    }
    const model = new ModelFile(file, session, description);
    model.checkContract();
    return model;
  }

  checkContract() {
    const inputs = new Map(this.session.inputMetadata.map((m) => [m.name, m]));
    for (const name of INPUTS) {
      const meta = inputs.get(name);
      if (!meta) throw new Error(`${this.path}: model lacks input ${name}`);
      if (meta.type !== 'float32') {
        throw new Error(`${this.path}: input ${name} is ${meta.type}, expected float32`);
      }
    }
    for (const name of this.outputs) {
      if (!this.session.outputNames.includes(name)) {
        throw new Error(`${this.path}: model lacks output ${name}`);
      }
    }
    const atoms = inputs.get('positions').shape?.[1];
    if (Number.isInteger(atoms) && atoms !== this.description.n_atoms) {
      throw new Error(`${this.path}: graph takes ${atoms} atoms but its description lists `
        + `${this.description.n_atoms}`);
    }
  }

  /**
   * One graph call (see Model.run).  Returns nMembers outputs {positions_t, velocities_t:
   * Float32Array (B·K·N·3), energy_t: Float32Array (B·K) or absent}, views of the graph's
   * outputs (an ensemble file's member axis comes first).
   */
  async run(positions, velocities, times) {
    const n = this.description.n_atoms;
    const b = positions.length;
    const k = times[0].length;
    const flat = (rows) => Float32Array.from(rows.flatMap((r) => Array.from(r)));
    const feeds = {
      positions: new ort.Tensor('float32', flat(positions), [b, n, 3]),
      velocities: new ort.Tensor('float32', flat(velocities), [b, n, 3]),
      times: new ort.Tensor('float32', flat(times), [b, k]),
    };
    const results = await this.session.run(feeds, this.outputs);
    const lead = this.description.n_members === null ? [] : [this.nMembers];
    const members = Array.from({length: this.nMembers}, () => ({}));
    for (const name of this.outputs) {
      const per = name === ENERGY_OUTPUT ? [b, k] : [b, k, n, 3];
      const expected = lead.concat(per);
      const dims = results[name].dims;
      if (dims.length !== expected.length || dims.some((d, i) => d !== expected[i])) {
        throw new Error(`${this.path}: output ${name} has shape [${dims}], expected [${expected}]`);
      }
      const size = per.reduce((x, y) => x * y, 1);
      const data = results[name].data;
      members.forEach((m, i) => { m[name] = data.subarray(i * size, (i + 1) * size); });
    }
    return members;
  }
}

/** A model: the members of one or more files (see the module comment). */
class Model {
  /** Use {@link Model.load}.  `source`: the path given; `files`: ModelFile objects. */
  constructor(source, files) {
    if (!files.length) throw new Error('a model needs at least one member');
    files.slice(1).forEach((other) => checkSame(files[0], other));
    this.path = source;
    this.files = files;
    this.description = files[0].description;
    this.nMembers = files.reduce((sum, f) => sum + f.nMembers, 0);
  }

  /**
   * Open a model: `source` is an .onnx file, a folder (every *.onnx in it, sorted by name) or
   * a list of those; `threads`: onnxruntime intra-op threads per file (optional).
   */
  static async load(source, {threads} = {}) {
    const files = [];
    for (const file of modelFiles(source)) files.push(await ModelFile.load(file, {threads}));
    return new Model(source, files);
  }

  /** The model's files, in member order. */
  get paths() {
    return this.files.map((f) => f.path);
  }

  /** A name per member: the file's name, with `[m]` for the members of an ensemble file. */
  get memberNames() {
    return this.files.flatMap((f) => (f.description.n_members === null ? [path.basename(f.path)]
      : Array.from({length: f.nMembers}, (_, m) => `${path.basename(f.path)}[${m}]`)));
  }

  /**
   * One call of every member.  positions, velocities: B Float64Arrays of N·3 (Å, Å/fs);
   * times: B arrays of K (fs, within [0, tc]).  All are rounded to float32, the graph's input
   * type.  Returns one output per member, in member order: {positions_t, velocities_t:
   * Float32Array (B·K·N·3), energy_t: Float32Array (B·K) when the model has energy}.
   */
  async run(positions, velocities, times) {
    const outs = [];
    for (const file of this.files) outs.push(...await file.run(positions, velocities, times));
    return outs;
  }

  /** Times (K) fs checked to lie within [0, tc] (with rounding slack) and clipped to it. */
  checkedTimes(times) {
    const tc = this.description.tc_fs;
    const slack = TIME_RTOL * tc;
    if (!times.length || times.some((t) => !Number.isFinite(t) || t < -slack || t > tc + slack)) {
      throw new Error(`times must lie within the segment [0, ${tc}] fs; got ${times.join(', ')}`);
    }
    return times.map((t) => Math.min(Math.max(t, 0), tc));
  }

  /**
   * Frames of one segment, as gicnet's Model.predict: the graph's raw output (lab frame) of a
   * single network; of an ensemble, with `ensemble` "mean" (default) the mean of the members
   * whose prediction is finite, with their spread, or with "select" per initial condition the
   * member with the smallest total-energy error over t = 0 and the given times (models with
   * energy; without, the mean).  state: {positions, velocities} (B Float64Arrays, Å, Å/fs);
   * times (K) fs.  Returns B trajectories {time_fs, positions, velocities (K Float64Arrays of
   * N·3), potential_eV (K) or null, member (the member used; -1: the mean), spread_A (K, Å:
   * the members' root-mean-square atom distance from the mean) or null}.
   */
  async predict(state, times, {ensemble = 'mean'} = {}) {
    if (!ENSEMBLE_MODES.includes(ensemble)) {
      throw new Error(`ensemble must be one of ${ENSEMBLE_MODES.join(', ')}, got `
        + JSON.stringify(ensemble));
    }
    const desc = this.description;
    const select = ensemble === 'select' && this.nMembers > 1 && desc.has_energy;
    const first = select ? 1 : 0;
    const local = this.checkedTimes(times);
    const asked = select ? [0].concat(local) : local;
    const outs = await this.run(state.positions, state.velocities,
      state.positions.map(() => asked));
    const n3 = 3 * desc.n_atoms;
    const k = asked.length;
    const masses = Float64Array.from(desc.masses_amu);
    const names = Object.keys(outs[0]);
    return state.positions.map((_, b) => {
      // member m's frames of row b, float64: {positions_t, velocities_t: K arrays, energy_t}
      const rows = outs.map((out) => Object.fromEntries(names.map((name) => [name,
        name === ENERGY_OUTPUT ? Array.from(out[name].subarray(b * k, (b + 1) * k))
          : asked.map((_t, j) => Float64Array.from(
            out[name].subarray((b * k + j) * n3, (b * k + j + 1) * n3)))])));
      let member = 0;
      let picked = rows[0];
      let spread = null;
      if (select) {
        member = bestMember(rows, state.velocities[b], masses);
        picked = rows[member];
      } else if (this.nMembers > 1) {
        member = -1;
        ({mean: picked, spread} = memberMean(rows));
      }
      const frames = Object.fromEntries(Object.entries(picked)
        .map(([name, value]) => [name, value.slice(first)]));
      checkFinite(frames, local, b);
      return {time_fs: times.slice(), positions: frames.positions_t,
        velocities: frames.velocities_t, potential_eV: frames.energy_t ?? null, member,
        spread_A: spread && spread.slice(first)};
    });
  }
}

/**
 * The model files `source` names: a file; a folder's *.onnx files, sorted by name; or a list
 * of those, in order (gicnet_runtime.model.model_files).
 */
function modelFiles(source) {
  const items = Array.isArray(source) ? source : [source];
  if (!items.length) throw new Error('no model files given');
  return items.flatMap((item) => {
    if (!fs.existsSync(item) || !fs.statSync(item).isDirectory()) return [item];
    const found = fs.readdirSync(item).filter((name) => name.endsWith('.onnx')).sort()
      .map((name) => path.join(item, name));
    if (!found.length) throw new Error(`model folder ${item} holds no .onnx files`);
    return found;
  });
}

/** Members must agree in atoms, masses (to MASSES_RTOL), tc and energy output. */
function checkSame(first, other) {
  const [a, b] = [first.description, other.description];
  const same = a.atomic_numbers.length === b.atomic_numbers.length
    && a.atomic_numbers.every((z, i) => z === b.atomic_numbers[i])
    && a.masses_amu.every((m, i) => Math.abs(m - b.masses_amu[i])
      <= MASSES_RTOL * Math.abs(b.masses_amu[i]))
    && a.tc_fs === b.tc_fs && a.has_energy === b.has_energy;
  if (!same) {
    const [nameA, nameB] = [first.path, other.path].map((p) => path.basename(p));
    throw new Error(`ensemble members ${nameA} and ${nameB} differ in atoms, masses, tc or `
      + 'energy output');
  }
}

/**
 * The member with the smallest total-energy error over all times of `rows` (M members' frames
 * of one initial condition, the first time t = 0, which gives the reference energy);
 * velocities0: the initial velocities (N·3) Å/fs.  Ties and all-failed: the first.
 */
function bestMember(rows, velocities0, masses) {
  const reference = referenceEnergyEV(rows.map((r) => r.energy_t[0]), velocities0, masses);
  const errors = rows.map((r) => totalEnergyErrorEV(r.energy_t, r.velocities_t, masses, reference));
  let best = 0;
  errors.forEach((e, m) => { if (e < errors[best]) best = m; });
  return best;
}

/**
 * The mean over the members whose every output is finite (NaN where none is) and the spread
 * of their positions: per time, the root-mean-square over those members and the atoms of the
 * distance from the mean, Å (gicnet_runtime.model._member_mean).  rows: M members' frames of
 * one initial condition.  Returns {mean (frames like a row), spread (K) Å}.
 */
function memberMean(rows) {
  const finite = rows.map((r) => Object.values(r).every((value) => value.every(
    (x) => (typeof x === 'number' ? Number.isFinite(x) : x.every(Number.isFinite)))));
  const count = finite.filter(Boolean).length;
  const weight = finite.map((f) => (count > 0 ? (f ? 1 / count : 0) : NaN));
  const use = (m) => weight[m] > 0;
  const mean = {};
  for (const name of Object.keys(rows[0])) {
    if (name === ENERGY_OUTPUT) {
      mean[name] = rows[0][name].map((_e, j) => rows.reduce(
        (sum, r, m) => sum + (use(m) ? r[name][j] : 0) * weight[m], 0));
    } else {
      mean[name] = rows[0][name].map((frame, j) => Float64Array.from(frame, (_x, i) => rows.reduce(
        (sum, r, m) => sum + (use(m) ? r[name][j][i] : 0) * weight[m], 0)));
    }
  }
  const atoms = rows[0].positions_t[0].length / 3;
  const spread = mean.positions_t.map((centre, j) => {
    let sum = 0;
    rows.forEach((r, m) => {
      if (!finite[m]) return;
      for (let i = 0; i < centre.length; i++) sum += (r.positions_t[j][i] - centre[i]) ** 2;
    });
    return Math.sqrt(sum / (Math.max(count, 1) * atoms));
  });
  return {mean, spread};
}

/** Refuse non-finite frames (outputs' values per time, at `times` fs) of initial condition b. */
function checkFinite(picked, times, b) {
  for (const [name, value] of Object.entries(picked)) {
    const bad = value.findIndex((x) => (typeof x === 'number' ? !Number.isFinite(x)
      : !x.every(Number.isFinite)));
    if (bad >= 0) {
      throw new Error(`the model predicted non-finite ${name} for initial condition ${b} at `
        + `t = ${formatG(times[bad])} fs`);
    }
  }
}

module.exports = {ENSEMBLE_MODES, Model, ModelFile, modelFiles};
