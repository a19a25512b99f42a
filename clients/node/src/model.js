'use strict';
/**
 * One exported GICnet model opened with onnxruntime-node (CPU), checked against the ONNX
 * contract (docs/onnx-contract.md), with its description read from the file's metadata.
 */
const fs = require('node:fs');
const ort = require('onnxruntime-node');
const {metadataFromBytes} = require('./onnxmeta');
const {parseDescription} = require('./description');
const {TIME_RTOL} = require('./timegrid');

const INPUTS = ['positions', 'velocities', 'times'];
const OUTPUTS = ['positions_t', 'velocities_t'];
const ENERGY_OUTPUT = 'energy_t';

class Model {
  /** Use {@link Model.load}. */
  constructor(path, session, description) {
    this.path = path;
    this.session = session;
    this.description = description;
    this.outputs = OUTPUTS.concat(description.has_energy ? [ENERGY_OUTPUT] : []);
  }

  /** Open the .onnx file at `path`; `threads`: onnxruntime intra-op threads (optional). */
  static async load(path, {threads} = {}) {
    if (!fs.existsSync(path) || !fs.statSync(path).isFile()) {
      throw new Error(`model file not found: ${path}`);
    }
    const bytes = fs.readFileSync(path);
    const description = parseDescription(metadataFromBytes(bytes));
    const options = {executionProviders: ['cpu']};
    if (threads) Object.assign(options, {intraOpNumThreads: threads, interOpNumThreads: 1});
    let session;
    try {
      session = await ort.InferenceSession.create(bytes, options);
    } catch (err) {
      throw new Error(`cannot load model ${path}: ${err.message}`);
    }
    const model = new Model(path, session, description);
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
   * One graph call.  positions, velocities: B Float64Arrays of N·3 (Å, Å/fs); times: B arrays
   * of K (fs, within [0, tc]).  All are rounded to float32, the graph's input type.
   * Returns {positions_t, velocities_t: Float32Array (B·K·N·3), energy_t: Float32Array (B·K)}.
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
    const out = {};
    for (const name of this.outputs) {
      const expected = name === ENERGY_OUTPUT ? [b, k] : [b, k, n, 3];
      const dims = results[name].dims;
      if (dims.length !== expected.length || dims.some((d, i) => d !== expected[i])) {
        throw new Error(`${this.path}: output ${name} has shape [${dims}], expected [${expected}]`);
      }
      out[name] = results[name].data;
    }
    return out;
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
   * Frames of one segment: the graph's raw output (lab frame), as gicnet's Model.predict for
   * a single member.  state: {positions, velocities} (B Float64Arrays, Å, Å/fs); times (K) fs.
   * Returns B trajectories {time_fs, positions, velocities (K Float64Arrays), potential_eV}.
   */
  async predict(state, times) {
    const local = this.checkedTimes(times);
    const rows = state.positions.map(() => local);
    const out = await this.run(state.positions, state.velocities, rows);
    const n3 = 3 * this.description.n_atoms;
    const k = local.length;
    return state.positions.map((_, b) => {
      const frame = (name, j) => Float64Array.from(
        out[name].subarray((b * k + j) * n3, (b * k + j + 1) * n3));
      const trajectory = {time_fs: times.slice(),
        positions: local.map((_t, j) => frame('positions_t', j)),
        velocities: local.map((_t, j) => frame('velocities_t', j)),
        potential_eV: null};
      if (out.energy_t) {
        trajectory.potential_eV = Array.from(out.energy_t.subarray(b * k, b * k + k));
      }
      const bad = [...trajectory.positions, ...trajectory.velocities]
        .some((x) => x.some((v) => !Number.isFinite(v)));
      if (bad) throw new Error(`the model predicted non-finite values for initial condition ${b}`);
      return trajectory;
    });
  }
}

module.exports = {Model};
