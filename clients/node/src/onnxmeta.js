'use strict';
/**
 * The custom metadata of an ONNX file (ModelProto.metadata_props), read straight from the
 * protobuf bytes: onnxruntime-node's JavaScript API does not expose it.
 *
 * Only the top level of ModelProto is walked; the graph (field 7) is skipped by its length,
 * so the reader costs one pass over a few bytes per field whatever the model's size.
 */
const fs = require('node:fs');

/** ModelProto field numbers (onnx/onnx.proto). */
const MODEL_METADATA_PROPS = 14;
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;
/** Protobuf wire types. */
const WIRE = {VARINT: 0, FIXED64: 1, BYTES: 2, FIXED32: 5};

class ProtoReader {
  constructor(bytes) {
    this.bytes = bytes;
    this.pos = 0;
  }

  done() {
    return this.pos >= this.bytes.length;
  }

  /** A varint as a Number (exact up to 2^53, far beyond any length in a model file). */
  varint() {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (this.pos >= this.bytes.length) throw new Error('truncated varint');
      const byte = this.bytes[this.pos++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
  }

  /** The next field: {field, wire, value} where value is a Buffer for length-delimited fields. */
  field() {
    const tag = this.varint();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    switch (wire) {
      case WIRE.VARINT: return {field, wire, value: this.varint()};
      case WIRE.FIXED64: return {field, wire, value: this.skip(8)};
      case WIRE.FIXED32: return {field, wire, value: this.skip(4)};
      case WIRE.BYTES: return {field, wire, value: this.skip(this.varint())};
      default: throw new Error(`unsupported protobuf wire type ${wire}`);
    }
  }

  skip(n) {
    if (this.pos + n > this.bytes.length) throw new Error('truncated field');
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

/** metadata_props of an ONNX model held in `bytes` (a Buffer): {key: value} strings. */
function metadataFromBytes(bytes) {
  const reader = new ProtoReader(bytes);
  const props = {};
  while (!reader.done()) {
    const {field, wire, value} = reader.field();
    if (field !== MODEL_METADATA_PROPS || wire !== WIRE.BYTES) continue;
    const entry = new ProtoReader(value);
    let key = '';
    let text = '';
    while (!entry.done()) {
      const item = entry.field();
      if (item.wire !== WIRE.BYTES) continue;
      if (item.field === ENTRY_KEY) key = item.value.toString('utf8');
      if (item.field === ENTRY_VALUE) text = item.value.toString('utf8');
    }
    props[key] = text;
  }
  return props;
}

/** metadata_props of the ONNX file at `path`: {key: value} strings. */
function readMetadata(path) {
  try {
    return metadataFromBytes(fs.readFileSync(path));
  } catch (err) {
    throw new Error(`cannot read ONNX metadata of ${path}: ${err.message}`);
  }
}

module.exports = {metadataFromBytes, readMetadata};
