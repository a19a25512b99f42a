'use strict';
/** gicnet's Node.js client: exported GICnet models (single networks and ensembles). */
const {Model, ModelFile, modelFiles} = require('./model');
const {readInitial} = require('./initial');
const {propagate} = require('./propagate');
const {writeFrames, framesDocument} = require('./output');
const ensemble = require('./ensemble');
const momentum = require('./momentum');

module.exports = {
  Model, ModelFile, ensemble, framesDocument, modelFiles, momentum, propagate, readInitial,
  writeFrames,
};
