"""GFN2-xTB's cis-trans isomerization path of azobenzene: rotation or inversion?

    pip install rdkit && python recipes/azobenzene_scan.py   # -> runs/azobenzene-scan/

The first step of the azobenzene data recipe (issue 17): before sampling transitions, find
the lowest path on the reference potential.  Azobenzene (C12H10N2) is built from SMILES
with RDKit (ETKDG embedding, MMFF pre-optimisation), cis and trans optimised with
GFN2-xTB (tblite, through ASE), then two relaxed scans from trans, each point optimised
with ASE's BFGS under an ASE ``FixInternals`` constraint, starting from the previous
point's structure:

- **rotation**: the CNNC dihedral from 180° to 0° in steps of ``--step-deg``;
- **inversion**: one CNN angle from its trans value towards 180° (the linear N at the
  inversion transition state), CNNC free; up to ``INVERSION_END_DEG`` (ASE's
  FixInternals cannot hold an angle at exactly 180°, where its gradient vanishes).

Energies are reported relative to trans, kcal/mol; the top of each path and its
structure (extended XYZ) are saved, as the starting point for sampling the transition
region.  Atoms: RDKit's order for the SMILES below, 0-based; the CNNC dihedral is atoms
3-6-7-8 (1-based 4-7-8-9).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing gicnet

from gicnet_runtime.units import EV_IN_KCAL_PER_MOL  # noqa: E402

SMILES = {"trans": "c1ccc(cc1)/N=N/c1ccccc1", "cis": "c1ccc(cc1)/N=N\\c1ccccc1"}
#: The CNNC dihedral and the two CNN angles, 0-based atoms in RDKit's order of SMILES.
CNNC = (3, 6, 7, 8)
CNN = ((3, 6, 7), (8, 7, 6))
FMAX_EV_PER_A = 0.02
#: Tighter convergence of the two minima, eV/Å, after a random displacement of
#: ``JIGGLE_A`` (rms, Å): RDKit + MMFF embed cis azobenzene planar, a saddle point that BFGS
#: from there does not leave (2.6 kcal/mol above the twisted minimum, CNNC 12°).
MINIMUM_FMAX_EV_PER_A = 0.005
JIGGLE_A = 0.08
#: BFGS's largest step, Å (small, so that FixInternals can hold its target).
MAX_STEP_A = 0.04
#: Last CNN angle of the inversion scan, degrees.
INVERSION_END_DEG = 176.0
MAX_STEPS = 400


def build(isomer: str, seed: int = 7):
    """ase.Atoms of ``isomer`` from SMILES: RDKit ETKDG embedding + MMFF."""
    from ase import Atoms
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(SMILES[isomer]))
    if AllChem.EmbedMolecule(mol, randomSeed=seed) != 0:
        raise RuntimeError(f"RDKit could not embed {isomer} azobenzene")
    AllChem.MMFFOptimizeMolecule(mol)
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    return Atoms(symbols, positions=mol.GetConformer().GetPositions())


def minimum(isomer: str, seed: int = 7):
    """(ase.Atoms, energy eV) of the GFN2-xTB minimum of ``isomer``: built from SMILES,
    relaxed, displaced at random by ``JIGGLE_A`` (seeded) off any symmetric saddle point and
    relaxed again to ``MINIMUM_FMAX_EV_PER_A``."""
    atoms = build(isomer, seed)
    relax(atoms)
    atoms.positions += np.random.default_rng(seed).normal(0.0, JIGGLE_A, atoms.positions.shape)
    energy = relax(atoms, fmax=MINIMUM_FMAX_EV_PER_A, max_steps=1500)
    return atoms, energy


def side(atoms, keep: int, cut: int) -> list[int]:
    """Atoms on ``cut``'s side of the bond keep-cut (``cut`` included), by covalent graph."""
    from ase.neighborlist import natural_cutoffs, neighbor_list

    i, j = neighbor_list("ij", atoms, natural_cutoffs(atoms))
    neighbours = {k: set(j[i == k]) for k in range(len(atoms))}
    found, todo = {cut}, [cut]
    while todo:
        for n in neighbours[todo.pop()]:
            if n != keep and n not in found:
                found.add(n)
                todo.append(n)
    return sorted(found)


def relax(atoms, constraint=None, fmax: float = FMAX_EV_PER_A,
          max_steps: int = MAX_STEPS) -> float:
    """Optimise ``atoms`` in place with GFN2-xTB (BFGS, ``fmax`` eV/Å), under
    ``constraint``; returns the energy, eV."""
    from ase.optimize import BFGS

    from gicnet_runtime.reference.engines import make_calculator

    atoms.set_constraint(constraint)
    atoms.calc = make_calculator("gfn2")
    BFGS(atoms, logfile=None, maxstep=MAX_STEP_A).run(fmax=fmax, steps=max_steps)
    energy = float(atoms.get_potential_energy())
    atoms.set_constraint()
    return energy


def scan(start, kind: str, values_deg: np.ndarray, reference_eV: float, out: Path) -> dict:
    """A relaxed scan of the CNNC dihedral ("rotation") or the first CNN angle
    ("inversion") over ``values_deg``, each point from the previous one."""
    from ase.constraints import FixInternals

    atoms = start.copy()
    rows = []
    for value in values_deg:
        if kind == "rotation":
            atoms.set_dihedral(*CNNC, value, indices=side(atoms, CNNC[1], CNNC[2]))
            constraint = FixInternals(dihedrals_deg=[[float(value), list(CNNC)]])
        else:
            a1, a2, a3 = CNN[0]
            atoms.set_angle(a1, a2, a3, value, indices=side(atoms, a2, a1))
            constraint = FixInternals(angles_deg=[[float(value), list(CNN[0])]])
        try:
            energy = relax(atoms, constraint)
        except ValueError as err:  # FixInternals could not hold the target
            rows.append({"value_deg": float(value), "failed": str(err)})
            break
        rows.append({"value_deg": float(value),
                     "energy_kcal_per_mol": (energy - reference_eV) * EV_IN_KCAL_PER_MOL,
                     "cnnc_deg": float(atoms.get_dihedral(*CNNC)),
                     "cnn_deg": [float(atoms.get_angle(*a)) for a in CNN]})
        done = [r for r in rows if "failed" not in r]
        if rows[-1]["energy_kcal_per_mol"] >= max(r["energy_kcal_per_mol"] for r in done):
            atoms.write(out / f"{kind}_top.xyz")
    done = [r for r in rows if "failed" not in r]
    top = max(done, key=lambda r: r["energy_kcal_per_mol"])
    return {"points": rows, "barrier_kcal_per_mol": top["energy_kcal_per_mol"],
            "top": top}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "azobenzene-scan")
    parser.add_argument("--step-deg", type=float, default=15.0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    minima = {}
    for isomer in ("trans", "cis"):
        atoms, energy = minimum(isomer)
        atoms.write(args.out / f"{isomer}.xyz")
        minima[isomer] = {"atoms": atoms, "energy_eV": energy,
                          "cnnc_deg": float(atoms.get_dihedral(*CNNC)),
                          "cnn_deg": [float(atoms.get_angle(*a)) for a in CNN]}
    reference = minima["trans"]["energy_eV"]
    trans_angle = minima["trans"]["cnn_deg"][0]
    rotation = scan(minima["trans"]["atoms"], "rotation",
                    np.arange(180.0, -0.1, -args.step_deg), reference, args.out)
    inversion = scan(minima["trans"]["atoms"], "inversion",
                     np.linspace(trans_angle, INVERSION_END_DEG, 9)[1:], reference, args.out)
    lower = min((("rotation", rotation), ("inversion", inversion)),
                key=lambda kv: kv[1]["barrier_kcal_per_mol"])[0]
    result = {
        "engine": "GFN2-xTB (tblite)", "smiles": SMILES,
        "atoms": [str(s) for s in minima["trans"]["atoms"].get_chemical_symbols()],
        "cnnc_atoms_1based": [a + 1 for a in CNNC],
        "cnn_atoms_1based": [[a + 1 for a in angle] for angle in CNN],
        "minima": {k: {"energy_kcal_per_mol": (v["energy_eV"] - reference)
                       * EV_IN_KCAL_PER_MOL, "cnnc_deg": v["cnnc_deg"], "cnn_deg": v["cnn_deg"]}
                   for k, v in minima.items()},
        "rotation": rotation, "inversion": inversion, "lower_path": lower,
        "fmax_eV_per_A": FMAX_EV_PER_A, "wall_s": time.perf_counter() - start,
    }
    (args.out / "scan.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("minima", "lower_path", "wall_s")}, indent=1))
    print(f"rotation barrier {rotation['barrier_kcal_per_mol']:.1f} kcal/mol at CNNC "
          f"{rotation['top']['cnnc_deg']:.0f} deg; inversion barrier "
          f"{inversion['barrier_kcal_per_mol']:.1f} kcal/mol at CNN "
          f"{inversion['top']['value_deg']:.0f} deg")
    return result


if __name__ == "__main__":
    main()
