"""Nodes per exported graph: ethanol (9 atoms) and trans-azobenzene (24 atoms).

    python -m benchmarks.graph_nodes [--out benchmarks/results/graph_nodes.json]
    PYTHONPATH=/path/to/old/checkout python -m benchmarks.graph_nodes --label old

Exports an untrained member (random weights: the node count depends on the molecule's IC
tree and the architecture, not on the weights) with the gicnet code on the import path,
and counts the graph's nodes as written and after onnxruntime's basic optimisation
(constant folding, what a session actually runs).  Run it with an older checkout first
on PYTHONPATH to compare: the JSON records the git commit of the code it ran.
Also prints the depth of each IC tree (the number of placement levels).
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

#: Idealised planar trans-azobenzene, Å and degrees.
NN_A, CN_A, CC_A, CH_A = 1.25, 1.43, 1.39, 1.08
CNN_DEG = 114.0


def ethanol() -> tuple[np.ndarray, np.ndarray]:
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    return atoms.positions, atoms.numbers


def azobenzene() -> tuple[np.ndarray, np.ndarray]:
    """(24, 3) Å positions and atomic numbers of an idealised trans-azobenzene, C12H10N2."""
    positions, numbers = [np.array([-NN_A / 2, 0, 0]), np.array([NN_A / 2, 0, 0])], [7, 7]
    for sign in (-1.0, 1.0):  # the two phenyl rings, related by inversion (trans)
        nitrogen = positions[0] if sign < 0 else positions[1]
        angle = np.radians(180.0 - CNN_DEG)
        out = sign * np.array([np.cos(angle), np.sin(angle), 0.0])  # N -> ipso C
        centre = nitrogen + (CN_A + CC_A) * out
        for k in range(6):
            phi = np.radians(60.0 * k)
            rot = np.array([[np.cos(phi), -np.sin(phi), 0], [np.sin(phi), np.cos(phi), 0],
                            [0, 0, 1]])
            radial = rot @ -out
            positions.append(centre + CC_A * radial)
            numbers.append(6)
            if k:  # every ring carbon but the ipso one carries a hydrogen
                positions.append(centre + (CC_A + CH_A) * radial)
                numbers.append(1)
    # A slight out-of-plane wiggle keeps every reference triple away from exact planarity.
    pos = np.array(positions) + 0.01 * np.sin(np.arange(24))[:, None] * np.array([0, 0, 1])
    return pos, np.array(numbers)


def count(positions: np.ndarray, numbers: np.ndarray, folder: Path) -> dict:
    import onnx
    import onnxruntime as ort
    import torch
    from ase.data import atomic_masses

    from gicnet_train.energy import EnergyModel
    from gicnet_train.export import ExportGraph
    from gicnet_train.icbuild import build_icdef
    from gicnet_train.model import GICnet, ModelConfig

    masses = atomic_masses[numbers]
    icdef = build_icdef(positions, numbers, masses)
    model = GICnet(icdef, masses, ModelConfig()).float().eval()
    energy = EnergyModel(len(numbers)).float().eval()
    n = len(numbers)
    path, optimised = folder / f"m{n}.onnx", folder / f"m{n}.opt.onnx"
    example = (torch.randn(2, n, 3), 0.01 * torch.randn(2, n, 3), torch.rand(2, 3))
    axes = {"positions": {0: "B"}, "velocities": {0: "B"}, "times": {0: "B", 1: "K"}}
    torch.onnx.export(ExportGraph(model, energy), example, str(path),
                      input_names=["positions", "velocities", "times"],
                      output_names=["positions_t", "velocities_t", "energy_t"],
                      opset_version=17, dynamo=False, dynamic_axes=axes)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(optimised)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    written, run = onnx.load(path).graph.node, onnx.load(optimised).graph.node
    return {"atoms": n, "ic_tree_depth": ic_tree_depth(icdef.rows), "nodes": len(written),
            "nodes_after_basic_optimisation": len(run),
            "top_ops": collections.Counter(x.op_type for x in run).most_common(6)}


def ic_tree_depth(rows) -> int:
    depth = {-1: 0, -2: 0, -3: 0}
    for atom, *refs in rows:
        depth[atom] = 1 + max(depth[r] for r in refs)
    return max(depth.values())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--label", default="current")
    p.add_argument("--out", type=Path, default=None, help="JSON file to add this run to")
    args = p.parse_args()
    import gicnet_train

    root = Path(gicnet_train.__file__).resolve().parent.parent
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        result = {"label": args.label, "commit": commit, "code": str(root),
                  "molecules": {name: count(*build(), Path(tmp))
                                for name, build in (("ethanol", ethanol),
                                                    ("azobenzene", azobenzene))}}
    print(json.dumps(result, indent=1))
    if args.out is not None:
        runs = json.loads(args.out.read_text()) if args.out.exists() else []
        runs = [r for r in runs if r["label"] != args.label] + [result]
        args.out.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
