#!/usr/bin/env node
'use strict';
/**
 * gicnet-node: run an exported GICnet model from Node.js.
 *
 *   node src/cli.js info      [--model PATH]
 *   node src/cli.js predict   [--model PATH] [--init FILE] --times SPEC [--ensemble mean|select]
 *                             [--out FILE]
 *   node src/cli.js propagate [--model PATH] [--init FILE] --segments N --dt-fs DT
 *                             [--segment-fs L] [--restore-energy|--no-restore-energy]
 *                             [--energy-threshold-eV E] [--out FILE]
 *
 * --model is an .onnx file (one network or an ensemble file) or a folder (every *.onnx in it,
 * an ensemble); it defaults to the shipped model folder exported/ethanol, --init to
 * initial.extxyz in the model folder (next to a model file); --out .json (all trajectories)
 * or .extxyz (one file per trajectory), JSON on stdout when absent.  propagate unrolls N
 * segments of L fs (L defaults to the model's unroll_segment_fs, else tc), so the
 * trajectories last N·L fs, choosing a member per segment as the Python runtime does.
 * Errors are one line on stderr and exit code 1.
 */
const fs = require('node:fs');
const path = require('node:path');
const {parseArgs} = require('node:util');
const {Model} = require('./model');
const {DEFAULT_INIT_NAME, readInitial} = require('./initial');
const {framesDocument, writeFrames} = require('./output');
const {ENERGY_THRESHOLD_EV} = require('./ensemble');
const {propagate, unrollSettings} = require('./propagate');
const {parseTimes} = require('./timegrid');

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
/** The shipped model: every *.onnx in this folder (an ensemble). */
const DEFAULT_MODEL = path.join(REPO_ROOT, 'exported', 'ethanol');
const OPTIONS = {
  model: {type: 'string', default: DEFAULT_MODEL},
  init: {type: 'string'},
  times: {type: 'string'},
  ensemble: {type: 'string', default: 'mean'},
  segments: {type: 'string'},
  'segment-fs': {type: 'string'},
  'restore-energy': {type: 'boolean'},
  'no-restore-energy': {type: 'boolean'},
  'energy-threshold-eV': {type: 'string'},
  'dt-fs': {type: 'string'},
  out: {type: 'string'},
  threads: {type: 'string'},
  help: {type: 'boolean', short: 'h'},
};

const USAGE = `usage: gicnet-node <info|predict|propagate> [options]
  --model PATH      exported model: an .onnx file (one network or an ensemble file) or a
                    folder of them (an ensemble) [${path.relative(process.cwd(), DEFAULT_MODEL)}]
  --init FILE       initial conditions, extended XYZ with momenta or JSON
                    [${DEFAULT_INIT_NAME} in the model folder, or next to the model file]
  --times SPEC      predict: times in the segment, fs: start:stop:step or t1,t2,...
  --ensemble MODE   predict: an ensemble's answer: mean (of the members, with their
                    spread) or select (the member with the smallest energy error) [mean]
  --segments N      propagate: number of segments to unroll (duration N·L)
  --segment-fs L    propagate: segment length L, fs, 0 < L <= tc
                    [the model's unroll_segment_fs, else tc]
  --restore-energy, --no-restore-energy
                    propagate: start every segment with the trajectory's initial total
                    energy by scaling the stretch-and-bend velocities
                    [on for models with energy]
  --energy-threshold-eV E
                    propagate: a segment whose best member's total-energy error exceeds
                    E eV steps back a segment to try the next member
                    [${ENERGY_THRESHOLD_EV} (1 kcal/mol)]
  --dt-fs DT        propagate: output frame spacing, fs
  --out FILE        .json or .extxyz (default: JSON on stdout)
  --threads N       onnxruntime intra-op threads`;

function positive(text, name, integer = false) {
  const value = Number(text);
  if (text === undefined || !(value > 0) || (integer && !Number.isInteger(value))) {
    throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got ${text}`);
  }
  return value;
}

/** propagate's --segment-fs and --restore-energy / --no-restore-energy (undefined: default). */
function unrollOptions(values) {
  if (values['restore-energy'] && values['no-restore-energy']) {
    throw new Error('give --restore-energy or --no-restore-energy, not both');
  }
  return {
    segmentFs: values['segment-fs'] === undefined ? undefined
      : positive(values['segment-fs'], 'segment-fs'),
    restoreEnergy: values['restore-energy'] ? true
      : values['no-restore-energy'] ? false : undefined,
  };
}

function isFolder(file) {
  return fs.existsSync(file) && fs.statSync(file).isDirectory();
}

async function main(argv) {
  const {values, positionals} = parseArgs({args: argv, options: OPTIONS, allowPositionals: true});
  const command = positionals[0];
  if (values.help || !['info', 'predict', 'propagate'].includes(command)) {
    if (values.help) return void process.stdout.write(USAGE + '\n');
    throw new Error(`unknown command ${JSON.stringify(command ?? '')}; `
      + 'choose info, predict or propagate');
  }
  const threads = values.threads === undefined ? undefined
    : positive(values.threads, 'threads', true);
  const model = await Model.load(values.model, {threads});
  if (command === 'info') {
    // the first file's description, and the model's files and member count
    const info = {...model.description, model_files: model.paths, model_members: model.nMembers};
    return void process.stdout.write(JSON.stringify(info, null, 1) + '\n');
  }
  const init = values.init || path.join(isFolder(values.model) ? values.model
    : path.dirname(values.model), DEFAULT_INIT_NAME);
  const state = readInitial(init, model.description);
  let trajectories;
  let settings = {};
  if (command === 'predict') {
    if (values.times === undefined) throw new Error('predict needs --times');
    trajectories = await model.predict(state, parseTimes(values.times),
      {ensemble: values.ensemble});
  } else {
    const segments = positive(values.segments, 'segments', true);
    const dtFs = positive(values['dt-fs'], 'dt-fs');
    const unroll = unrollSettings(model.description, unrollOptions(values));
    const thresholdEV = values['energy-threshold-eV'] === undefined ? ENERGY_THRESHOLD_EV
      : positive(values['energy-threshold-eV'], 'energy-threshold-eV');
    const durationFs = segments * unroll.segmentFs;
    settings = {segment_fs: unroll.segmentFs, restore_energy: unroll.restoreEnergy,
      energy_threshold_eV: thresholdEV, dt_fs: dtFs, duration_fs: durationFs};
    trajectories = await propagate(model, state, durationFs, dtFs,
      {...unroll, energyThresholdEV: thresholdEV});
  }
  if (values.out === undefined) {
    const doc = framesDocument(model, trajectories, command, settings);
    return void process.stdout.write(JSON.stringify(doc) + '\n');
  }
  const written = writeFrames(model, trajectories, command, values.out, settings);
  const failed = trajectories.map((t, b) => t.failure && `trajectory ${b}: ${t.failure}`)
    .filter(Boolean);
  failed.forEach((line) => process.stderr.write(`warning: ${line}\n`));
  process.stderr.write(`wrote ${written.length === 1 ? written[0] : `${written.length} files`}\n`);
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`error: ${String(err.message || err).split('\n').join(' ')}\n`);
  process.exitCode = 1;
});
