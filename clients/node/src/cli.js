#!/usr/bin/env node
'use strict';
/**
 * gicnet-node: run an exported GICnet model from Node.js.
 *
 *   node src/cli.js info      [--model FILE]
 *   node src/cli.js predict   [--model FILE] [--init FILE] --times SPEC      [--out FILE]
 *   node src/cli.js propagate [--model FILE] [--init FILE] --segments N --dt-fs DT
 *                             [--segment-fs L] [--restore-energy|--no-restore-energy] [--out FILE]
 *
 * --model defaults to exported/ethanol/member_0.onnx, --init to initial.extxyz next to the
 * model; --out .json (all trajectories) or .extxyz (one file per trajectory), JSON on stdout
 * when absent.  propagate unrolls N segments of L fs (L defaults to the model's
 * unroll_segment_fs, else tc), so the trajectories last N·L fs.  Errors are one line on
 * stderr and exit code 1.
 */
const path = require('node:path');
const {parseArgs} = require('node:util');
const {Model} = require('./model');
const {DEFAULT_INIT_NAME, readInitial} = require('./initial');
const {framesDocument, writeFrames} = require('./output');
const {propagate, unrollSettings} = require('./propagate');
const {parseTimes} = require('./timegrid');

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const DEFAULT_MODEL = path.join(REPO_ROOT, 'exported', 'ethanol', 'member_0.onnx');
const OPTIONS = {
  model: {type: 'string', default: DEFAULT_MODEL},
  init: {type: 'string'},
  times: {type: 'string'},
  segments: {type: 'string'},
  'segment-fs': {type: 'string'},
  'restore-energy': {type: 'boolean'},
  'no-restore-energy': {type: 'boolean'},
  'dt-fs': {type: 'string'},
  out: {type: 'string'},
  threads: {type: 'string'},
  help: {type: 'boolean', short: 'h'},
};

const USAGE = `usage: gicnet-node <info|predict|propagate> [options]
  --model FILE      exported model (.onnx) [${path.relative(process.cwd(), DEFAULT_MODEL)}]
  --init FILE       initial conditions, extended XYZ with momenta or JSON
                    [${DEFAULT_INIT_NAME} next to the model]
  --times SPEC      predict: times in the segment, fs: start:stop:step or t1,t2,...
  --segments N      propagate: number of segments to unroll (duration N·L)
  --segment-fs L    propagate: segment length L, fs, 0 < L <= tc
                    [the model's unroll_segment_fs, else tc]
  --restore-energy, --no-restore-energy
                    propagate: start every segment with the trajectory's initial total
                    energy by scaling the stretch-and-bend velocities
                    [on for models with energy]
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
    return void process.stdout.write(JSON.stringify(model.description, null, 1) + '\n');
  }
  const init = values.init || path.join(path.dirname(values.model), DEFAULT_INIT_NAME);
  const state = readInitial(init, model.description);
  let trajectories;
  let settings = {};
  if (command === 'predict') {
    if (values.times === undefined) throw new Error('predict needs --times');
    trajectories = await model.predict(state, parseTimes(values.times));
  } else {
    const segments = positive(values.segments, 'segments', true);
    const dtFs = positive(values['dt-fs'], 'dt-fs');
    const unroll = unrollSettings(model.description, unrollOptions(values));
    settings = {segment_fs: unroll.segmentFs, restore_energy: unroll.restoreEnergy};
    trajectories = await propagate(model, state, segments * unroll.segmentFs, dtFs, unroll);
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
