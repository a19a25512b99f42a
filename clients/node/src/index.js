'use strict';
/** gicnet's Node.js client: exported GICnet models through onnxruntime-node. */
const {Model} = require('./model');
const {readInitial} = require('./initial');
const {propagate} = require('./propagate');
const {writeFrames, framesDocument} = require('./output');
const momentum = require('./momentum');

module.exports = {Model, framesDocument, momentum, propagate, readInitial, writeFrames};
