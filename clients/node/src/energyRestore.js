'use strict';
/**
 * Energy restoration, as gicnet_runtime/energy_restore.py: a segment's end velocities get a
 * target kinetic energy by scaling only their stretch-and-bend part, the motion that changes
 * the bond lengths and angles of the model's IC rows between real atoms; the rigid motion
 * and the torsions are left alone (scaling the whole internal motion heats the torsions).
 *
 * With B the Jacobian of those P bond lengths and Q angles with respect to the positions and
 * M the masses, the stretch-and-bend part of velocities v is the motion of least kinetic
 * energy with the same bond and angle rates, v_sb = M⁻¹ Bᵀ (B M⁻¹ Bᵀ)⁻¹ B v.  It carries
 * neither linear nor angular momentum, and E_kin(v) = E_kin(v_sb) + E_kin(v − v_sb).
 *
 * One molecule at a time, in float64: positions and velocities are flat Float64Arrays of N·3
 * values (atom-major), Å and Å/fs; masses a Float64Array of N, amu; bonds [[i, j]] and angles
 * [[a, b, c]] (angle a-b-c, vertex b) of 0-based atom indices.
 */
const {kineticEnergyEV} = require('./momentum');

/** Largest factor by which restoration may change the stretch-and-bend velocities. */
const MAX_SCALE = 2.0;
/** Eigenvalues below this fraction of the largest are dropped from a pseudo-inverse (numpy). */
const PINV_RCOND = 1e-15;
/** Jacobi sweeps for the pseudo-inverse's eigen-decomposition (converges in far fewer). */
const JACOBI_SWEEPS = 100;

/**
 * The coordinates restoration scales, from the model's IC rows [[atom, ref1, ref2, ref3]]
 * (negative: dummy points): bonds (atom, ref1) of the rows with ref1 >= 0 and angles
 * (atom, ref1, ref2), vertex ref1, of the rows with ref1, ref2 >= 0, in row order.
 */
function stretchBendCoordinates(icRows) {
  return {
    bonds: icRows.filter((r) => r[1] >= 0).map((r) => [r[0], r[1]]),
    angles: icRows.filter((r) => r[1] >= 0 && r[2] >= 0).map((r) => [r[0], r[1], r[2]]),
  };
}

/** x_i − x_j as a unit vector and its length (Å). */
function unitAndLength(pos, i, j) {
  const d = [0, 1, 2].map((k) => pos[3 * i + k] - pos[3 * j + k]);
  const length = Math.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
  return {unit: d.map((x) => x / length), length};
}

/**
 * Derivatives of the bond lengths, then the angles, with respect to the positions: P + Q
 * Float64Arrays of N·3, Å/Å and rad/Å (Wilson's formulas; non-finite for a linear angle).
 */
function jacobian(pos, bonds, angles) {
  const row = (atoms, grads) => {
    const out = new Float64Array(pos.length);
    atoms.forEach((n, a) => grads[a].forEach((g, k) => { out[3 * n + k] = g; }));
    return out;
  };
  const bondRows = bonds.map(([i, j]) => {
    const {unit} = unitAndLength(pos, i, j);
    return row([i, j], [unit, unit.map((u) => -u)]);
  });
  const angleRows = angles.map(([a, b, c]) => {
    const {unit: e1, length: r1} = unitAndLength(pos, a, b);
    const {unit: e2, length: r2} = unitAndLength(pos, c, b);
    const cos = e1[0] * e2[0] + e1[1] * e2[1] + e1[2] * e2[2];
    const sin = Math.sqrt(Math.max(1 - cos ** 2, 0));
    const dA = e1.map((x, k) => (cos * x - e2[k]) / (r1 * sin));
    const dC = e2.map((x, k) => (cos * x - e1[k]) / (r2 * sin));
    return row([a, c, b], [dA, dC, dA.map((x, k) => -(x + dC[k]))]);
  });
  return bondRows.concat(angleRows);
}

/**
 * The part of the velocities that stretches the bonds and bends the angles, with least
 * kinetic energy (module comment): Float64Array (N·3), Å/fs; all NaN where the Jacobian is
 * not finite (a linear angle).
 */
function stretchBendVelocities(pos, vel, masses, bonds, angles) {
  const jac = jacobian(pos, bonds, angles);
  if (!jac.every((r) => r.every(Number.isFinite))) return new Float64Array(vel.length).fill(NaN);
  const weighted = jac.map((r) => r.map((x, j) => x / masses[Math.floor(j / 3)]));  // B M⁻¹
  const gram = jac.map((r) => weighted.map((w) => dot(r, w)));                        // B M⁻¹ Bᵀ
  const rates = jac.map((r) => dot(r, vel));                                          // B v
  // dependent coordinates (e.g. a collapsed geometry) make the system singular
  const coeff = solve(gram, rates) ?? pseudoInverseSolve(gram, rates);
  const part = new Float64Array(vel.length);
  weighted.forEach((w, p) => w.forEach((x, j) => { part[j] += x * coeff[p]; }));
  return part;
}

/**
 * Velocities with kinetic energy `targetEV` (eV) by scaling their stretch-and-bend part v_sb
 * by s = sqrt((target − E_kin(v) + E_kin(v_sb)) / E_kin(v_sb)), kept within
 * [1/maxScale, maxScale]; the rest of the motion and both momenta stay as they are.  The
 * velocities are returned unchanged (a copy) when the wanted energy of v_sb is <= 0, v_sb has
 * none, or s is not finite.  coords: {bonds, angles} (stretchBendCoordinates).  Returns a new
 * Float64Array (N·3), Å/fs.
 */
function restoreKineticEnergy(pos, vel, masses, coords, targetEV, maxScale = MAX_SCALE) {
  const part = stretchBendVelocities(pos, vel, masses, coords.bonds, coords.angles);
  const have = kineticEnergyEV(part, masses);
  const wanted = targetEV - kineticEnergyEV(vel, masses) + have;
  const scale = Math.sqrt(wanted / have);
  if (!(wanted > 0 && have > 0 && Number.isFinite(scale))) return Float64Array.from(vel);
  const s = Math.min(Math.max(scale, 1 / maxScale), maxScale);
  return Float64Array.from(vel, (v, j) => v + (s - 1) * part[j]);
}

function dot(a, b) {
  let sum = 0;
  for (let j = 0; j < a.length; j++) sum += a[j] * b[j];
  return sum;
}

/** x with A x = b by Gaussian elimination with partial pivoting; null when a pivot is 0. */
function solve(matrix, rhs) {
  const n = rhs.length;
  const a = matrix.map((r, i) => [...r, rhs[i]]);
  for (let c = 0; c < n; c++) {
    let pivot = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r][c]) > Math.abs(a[pivot][c])) pivot = r;
    if (a[pivot][c] === 0) return null;
    [a[c], a[pivot]] = [a[pivot], a[c]];
    for (let r = c + 1; r < n; r++) {
      const f = a[r][c] / a[c][c];
      for (let k = c; k <= n; k++) a[r][k] -= f * a[c][k];
    }
  }
  const x = new Float64Array(n);
  for (let r = n - 1; r >= 0; r--) {
    let sum = a[r][n];
    for (let k = r + 1; k < n; k++) sum -= a[r][k] * x[k];
    x[r] = sum / a[r][r];
  }
  return x;
}

/**
 * A⁺ b for a symmetric A, the pseudo-inverse dropping eigenvalues |λ| <= PINV_RCOND · max|λ|
 * (numpy.linalg.pinv(A, hermitian=True)).
 */
function pseudoInverseSolve(matrix, rhs) {
  const {values, vectors} = symmetricEigen(matrix);
  const cutoff = PINV_RCOND * Math.max(...values.map(Math.abs));
  const x = new Float64Array(rhs.length);
  values.forEach((value, e) => {
    if (!(Math.abs(value) > cutoff)) return;
    const along = vectors.reduce((sum, v, i) => sum + v[e] * rhs[i], 0) / value;
    vectors.forEach((v, i) => { x[i] += v[e] * along; });
  });
  return x;
}

/** Eigenvalues and eigenvectors (columns) of a symmetric n x n matrix, by Jacobi rotations. */
function symmetricEigen(matrix) {
  const n = matrix.length;
  const a = matrix.map((r) => Array.from(r));
  const v = a.map((_, i) => a.map((_r, j) => (i === j ? 1 : 0)));
  for (let sweep = 0; sweep < JACOBI_SWEEPS; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += Math.abs(a[p][q]);
    if (!(off > 0)) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        if (a[p][q] === 0) continue;
        const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const tan = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const cos = 1 / Math.sqrt(tan * tan + 1);
        const sin = tan * cos;
        rotateColumns(a, p, q, cos, sin);
        [a[p], a[q]] = [a[p].map((x, k) => cos * x - sin * a[q][k]),
          a[q].map((y, k) => sin * a[p][k] + cos * y)];
        rotateColumns(v, p, q, cos, sin);
      }
    }
  }
  return {values: a.map((r, i) => r[i]), vectors: v};
}

/** Columns p and q of m turned by the rotation (cos, sin), in place. */
function rotateColumns(m, p, q, cos, sin) {
  for (const r of m) [r[p], r[q]] = [cos * r[p] - sin * r[q], sin * r[p] + cos * r[q]];
}

module.exports = {
  MAX_SCALE, jacobian, restoreKineticEnergy, stretchBendCoordinates, stretchBendVelocities,
};
