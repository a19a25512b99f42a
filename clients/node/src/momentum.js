'use strict';
/**
 * Linear and angular momentum, and restoring them, in float64 (gicnet_runtime/momentum.py).
 *
 * One molecule at a time: positions and velocities are flat Float64Arrays of N·3 values
 * (atom-major: x0 y0 z0 x1 ...), Å and Å/fs; masses a Float64Array of N, amu.  Momenta are
 * amu·Å/fs, angular momenta amu·Å²/fs about the centre of mass.
 */
const {AMU_A2_PER_FS2_IN_EV} = require('./units');

/** Principal moments below this fraction of the largest count as zero (linear molecules). */
const INERTIA_RCOND = 1e-8;
/** Jacobi sweeps for the 3x3 eigen-decomposition (converges in far fewer). */
const JACOBI_SWEEPS = 50;

function totalMass(masses) {
  let sum = 0;
  for (const m of masses) sum += m;
  return sum;
}

/** Centre of mass (3,) Å. */
function centreOfMass(pos, masses) {
  const total = totalMass(masses);
  const com = new Float64Array(3);
  for (let i = 0; i < masses.length; i++) {
    const w = masses[i] / total;
    for (let k = 0; k < 3; k++) com[k] += pos[3 * i + k] * w;
  }
  return com;
}

/** Total linear momentum (3,) amu·Å/fs. */
function linearMomentum(vel, masses) {
  const p = new Float64Array(3);
  for (let i = 0; i < masses.length; i++) {
    for (let k = 0; k < 3; k++) p[k] += masses[i] * vel[3 * i + k];
  }
  return p;
}

function relative(pos, masses) {
  const com = centreOfMass(pos, masses);
  return pos.map((x, j) => x - com[j % 3]);
}

function crossInto(out, a, ia, b, ib) {
  out[0] = a[ia + 1] * b[ib + 2] - a[ia + 2] * b[ib + 1];
  out[1] = a[ia + 2] * b[ib] - a[ia] * b[ib + 2];
  out[2] = a[ia] * b[ib + 1] - a[ia + 1] * b[ib];
  return out;
}

function angularOfRelative(rel, vel, masses) {
  const l = new Float64Array(3);
  const c = new Float64Array(3);
  for (let i = 0; i < masses.length; i++) {
    crossInto(c, rel, 3 * i, vel, 3 * i);
    for (let k = 0; k < 3; k++) l[k] += masses[i] * c[k];
  }
  return l;
}

/** Total angular momentum about the centre of mass (3,) amu·Å²/fs. */
function angularMomentum(pos, vel, masses) {
  return angularOfRelative(relative(pos, masses), vel, masses);
}

/** Inertia tensor of positions relative to the centre of mass: 3x3 rows, amu·Å². */
function inertia(rel, masses) {
  const outer = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
  for (let i = 0; i < masses.length; i++) {
    for (let a = 0; a < 3; a++) {
      for (let b = 0; b < 3; b++) outer[a][b] += masses[i] * rel[3 * i + a] * rel[3 * i + b];
    }
  }
  const trace = outer[0][0] + outer[1][1] + outer[2][2];
  return outer.map((row, a) => row.map((x, b) => (a === b ? trace : 0) - x));
}

/** Kinetic energy, eV. */
function kineticEnergyEV(vel, masses) {
  let sum = 0;
  for (let i = 0; i < masses.length; i++) {
    for (let k = 0; k < 3; k++) sum += vel[3 * i + k] * vel[3 * i + k] * masses[i];
  }
  return 0.5 * sum * AMU_A2_PER_FS2_IN_EV;
}

/**
 * Velocities with total linear momentum `momentum` and angular momentum `angular`: a uniform
 * shift, then removal of the rigid rotation w x (r - com), w = I^+ (L - angular).
 * Returns a new Float64Array (N·3), Å/fs.
 */
function restoreMomentum(pos, vel, masses, momentum, angular) {
  const total = totalMass(masses);
  const p = linearMomentum(vel, masses);
  const shift = [0, 1, 2].map((k) => (p[k] - momentum[k]) / total);
  const out = Float64Array.from(vel, (v, j) => v - shift[j % 3]);
  const rel = relative(pos, masses);
  const l = angularOfRelative(rel, out, masses);
  const excess = [0, 1, 2].map((k) => l[k] - angular[k]);
  const inv = pseudoInverse(inertia(rel, masses));
  const omega = inv.map((row) => row[0] * excess[0] + row[1] * excess[1] + row[2] * excess[2]);
  const c = new Float64Array(3);
  for (let i = 0; i < masses.length; i++) {
    crossInto(c, omega, 0, rel, 3 * i);
    for (let k = 0; k < 3; k++) out[3 * i + k] -= c[k];
  }
  return out;
}

/**
 * Inverse of a symmetric 3x3 tensor as adjugate / determinant, or, when it is (nearly)
 * singular (det <= INERTIA_RCOND · trace³: a linear molecule), the pseudo-inverse with
 * eigenvalues below INERTIA_RCOND times the largest dropped, like numpy's pinv.
 */
function pseudoInverse(t) {
  const cols = [cross3(t[1], t[2]), cross3(t[2], t[0]), cross3(t[0], t[1])];
  const det = t[0][0] * cols[0][0] + t[0][1] * cols[0][1] + t[0][2] * cols[0][2];
  const trace = t[0][0] + t[1][1] + t[2][2];
  if (det > INERTIA_RCOND * trace ** 3) {
    return [0, 1, 2].map((i) => [0, 1, 2].map((j) => cols[j][i] / det));
  }
  const {values, vectors} = symmetricEigen(t);
  const cutoff = INERTIA_RCOND * Math.max(...values.map(Math.abs));
  const inv = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
  values.forEach((value, e) => {
    if (Math.abs(value) <= cutoff) return;
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) inv[i][j] += vectors[i][e] * vectors[j][e] / value;
    }
  });
  return inv;
}

function cross3(a, b) {
  return crossInto(new Float64Array(3), a, 0, b, 0);
}

/** Eigenvalues and eigenvectors (columns) of a symmetric 3x3 matrix, by Jacobi rotations. */
function symmetricEigen(t) {
  const a = t.map((row) => row.slice());
  const v = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  for (let sweep = 0; sweep < JACOBI_SWEEPS; sweep++) {
    if (Math.abs(a[0][1]) + Math.abs(a[0][2]) + Math.abs(a[1][2]) === 0) break;
    for (const [p, q] of [[0, 1], [0, 2], [1, 2]]) {
      if (a[p][q] === 0) continue;
      const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
      const tan = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
      const cos = 1 / Math.sqrt(tan * tan + 1);
      const sin = tan * cos;
      for (let k = 0; k < 3; k++) {
        const [akp, akq] = [a[k][p], a[k][q]];
        a[k][p] = cos * akp - sin * akq;
        a[k][q] = sin * akp + cos * akq;
      }
      for (let k = 0; k < 3; k++) {
        const [apk, aqk] = [a[p][k], a[q][k]];
        a[p][k] = cos * apk - sin * aqk;
        a[q][k] = sin * apk + cos * aqk;
      }
      for (let k = 0; k < 3; k++) {
        const [vkp, vkq] = [v[k][p], v[k][q]];
        v[k][p] = cos * vkp - sin * vkq;
        v[k][q] = sin * vkp + cos * vkq;
      }
    }
  }
  return {values: [a[0][0], a[1][1], a[2][2]], vectors: v};
}

/** Positions translated so that their centre of mass is `com` (3,) Å: new Float64Array. */
function restoreCentreOfMass(pos, masses, com) {
  const now = centreOfMass(pos, masses);
  return Float64Array.from(pos, (x, j) => x + (com[j % 3] - now[j % 3]));
}

module.exports = {
  angularMomentum, centreOfMass, kineticEnergyEV, linearMomentum, pseudoInverse,
  restoreCentreOfMass, restoreMomentum, totalMass,
};
