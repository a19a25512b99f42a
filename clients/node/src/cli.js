#!/usr/bin/env node
'use strict';
/**
 * gicnet-node: run an exported GICnet model from Node.js.
 *
 *   node src/cli.js info      [--model FILE]
 *   node src/cli.js predict   [--model FILE] [--init FILE] --times SPEC      [--out FILE]
 *   node src/cli.js propagate [--model FILE] [--init FILE] --segments N --dt-fs DT [--out FILE]
 *
 * --model defaults to exported/ethanol/member_0.onnx, --init to initial.extxyz next to the
 * model; --out .json (all trajectories) or .extxyz (one file per trajectory), JSON on stdout
 * when absent.  Errors are one line on stderr and exit code 1.
 */
const path = require('node:path');
const {parseArgs} = require('node:util');
const {Model} = require('./model');
const {DEFAULT_INIT_NAME, readInitial} = require('./initial');
const {framesDocument, writeFrames} = require('./output');
const {propagate} = require('./propagate');
const {parseTimes} = require('./timegrid');

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const DEFAULT_MODEL = path.join(REPO_ROOT, 'exported', 'ethanol', 'member_0.onnx');
const OPTIONS = {
  model: {type: 'string', default: DEFAULT_MODEL},
  init: {type: 'string'},
  times: {type: 'string'},
  segments: {type: 'string'},
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
  --segments N      propagate: number of segments of tc to unroll
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
  if (command === 'predict') {
    if (values.times === undefined) throw new Error('predict needs --times');
    trajectories = await model.predict(state, parseTimes(values.times));
  } else {
    const segments = positive(values.segments, 'segments', true);
    const dtFs = positive(values['dt-fs'], 'dt-fs');
    trajectories = await propagate(model, state, segments * model.description.tc_fs, dtFs);
  }
  if (values.out === undefined) {
    const doc = framesDocument(model, trajectories, command);
    return void process.stdout.write(JSON.stringify(doc) + '\n');
  }
  const written = writeFrames(model, trajectories, command, values.out);
  const failed = trajectories.map((t, b) => t.failure && `trajectory ${b}: ${t.failure}`)
    .filter(Boolean);
  failed.forEach((line) => process.stderr.write(`warning: ${line}\n`));
  process.stderr.write(`wrote ${written.length === 1 ? written[0] : `${written.length} files`}\n`);
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`error: ${String(err.message || err).split('\n').join(' ')}\n`);
  process.exitCode = 1;
});
