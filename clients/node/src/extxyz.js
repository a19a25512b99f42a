'use strict';
/**
 * Extended XYZ as ASE reads and writes it: a count line, a comment line of key=value pairs
 * (with `Properties=name:type:columns:...`), then one line per atom.
 */
const {SYMBOLS, atomicNumber} = require('./elements');

const PROPERTY_TYPES = new Set(['S', 'R', 'I', 'L']);

/** key=value pairs of a comment line: values bare, "quoted" (\-escapes) or {braced}. */
function parseComment(line) {
  const out = {};
  let i = 0;
  const word = (stop) => {
    let text = '';
    while (i < line.length && !stop(line[i])) text += line[i++];
    return text;
  };
  while (i < line.length) {
    if (/\s/.test(line[i])) { i++; continue; }
    const key = word((c) => c === '=' || /\s/.test(c));
    if (line[i] !== '=') { out[key] = true; continue; }
    i++;
    out[key] = readValue();
  }
  return out;

  function readValue() {
    const open = line[i];
    if (open === '"' || open === '{') {
      const close = open === '"' ? '"' : '}';
      let text = '';
      for (i++; i < line.length && line[i] !== close; i++) {
        if (line[i] === '\\' && open === '"' && i + 1 < line.length) i++;
        text += line[i];
      }
      i++;
      return text;
    }
    return word((c) => /\s/.test(c));
  }
}

/** [{name, type, count}] from a Properties value such as species:S:1:pos:R:3. */
function parseProperties(spec) {
  const parts = spec.split(':');
  if (parts.length % 3 !== 0) throw new Error(`malformed Properties=${spec}`);
  const columns = [];
  for (let j = 0; j < parts.length; j += 3) {
    const [name, type, count] = [parts[j], parts[j + 1], Number(parts[j + 2])];
    if (!PROPERTY_TYPES.has(type) || !(Number.isInteger(count) && count > 0)) {
      throw new Error(`malformed Properties=${spec}`);
    }
    columns.push({name, type, count});
  }
  return columns;
}

/**
 * Frames of an extended XYZ text: [{info, arrays}] where `info` holds the comment's
 * key=value pairs (strings) and `arrays` maps each property to a list of per-atom values
 * (numbers or strings; a list per atom when the property has several columns).
 */
function readExtxyz(text, source = 'extxyz') {
  const lines = text.split(/\r?\n/);
  const frames = [];
  let i = 0;
  while (i < lines.length) {
    if (!lines[i].trim()) { i++; continue; }
    const count = Number(lines[i].trim());
    if (!Number.isInteger(count) || count <= 0 || i + 1 + count >= lines.length + 1) {
      throw new Error(`${source}: bad atom count at line ${i + 1}`);
    }
    const info = parseComment(lines[i + 1] || '');
    const columns = parseProperties(info.Properties || 'species:S:1:pos:R:3');
    const arrays = Object.fromEntries(columns.map((c) => [c.name, []]));
    for (let a = 0; a < count; a++) {
      const fields = (lines[i + 2 + a] || '').trim().split(/\s+/);
      let f = 0;
      for (const c of columns) {
        const values = fields.slice(f, f + c.count).map((x) => cell(x, c.type));
        if (values.length !== c.count || values.some((x) => Number.isNaN(x))) {
          throw new Error(`${source}: malformed atom line ${i + 3 + a}`);
        }
        arrays[c.name].push(c.count === 1 ? values[0] : values);
        f += c.count;
      }
    }
    frames.push({info, arrays});
    i += 2 + count;
  }
  if (!frames.length) throw new Error(`${source} holds no geometries`);
  return frames;
}

function cell(text, type) {
  if (type === 'S') return text;
  if (type === 'L') return /^[tT]/.test(text);
  return Number(text);
}

/** Atomic numbers of a frame (from `Z` or `species`). */
function frameNumbers(frame) {
  if (frame.arrays.Z) return frame.arrays.Z;
  if (frame.arrays.species) return frame.arrays.species.map(atomicNumber);
  throw new Error('extxyz frame has neither a species nor a Z column');
}

/** A number written so that it reads back exactly (shortest round-trip form). */
function num(x) {
  return Number.isFinite(x) ? String(x) : String(x).toLowerCase();
}

/**
 * One frame as extended XYZ text.  `atoms`: {numbers (N), positions (N·3) Å, momenta (N·3),
 * masses (N)}; `info`: extra key=value pairs (numbers or strings).
 */
function formatFrame(atoms, info) {
  const n = atoms.numbers.length;
  const header = ['Properties=species:S:1:pos:R:3:momenta:R:3:masses:R:1', 'pbc="F F F"'];
  for (const [key, value] of Object.entries(info)) {
    header.push(typeof value === 'number' ? `${key}=${num(value)}`
      : `${key}=${JSON.stringify(String(value))}`);
  }
  const rows = [String(n), header.join(' ')];
  for (let a = 0; a < n; a++) {
    const xyz = (arr) => [0, 1, 2].map((k) => num(arr[3 * a + k])).join(' ');
    rows.push(`${SYMBOLS[atoms.numbers[a]]} ${xyz(atoms.positions)} ${xyz(atoms.momenta)} `
      + num(atoms.masses[a]));
  }
  return rows.join('\n') + '\n';
}

module.exports = {formatFrame, frameNumbers, parseComment, readExtxyz};
