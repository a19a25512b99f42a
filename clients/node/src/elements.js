'use strict';
/** Chemical symbols by atomic number (index 0 is a placeholder, as in ase.data). */
const SYMBOLS = ('X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni '
  + 'Cu Zn Ga Ge As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce '
  + 'Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra '
  + 'Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og')
  .split(' ');
const NUMBERS = new Map(SYMBOLS.map((s, z) => [s, z]));

/** Atomic number of a chemical symbol; throws for an unknown one. */
function atomicNumber(symbol) {
  const z = NUMBERS.get(symbol);
  if (z === undefined || z === 0) {
    throw new Error(`unknown chemical symbol ${JSON.stringify(symbol)}`);
  }
  return z;
}

module.exports = {SYMBOLS, atomicNumber};
