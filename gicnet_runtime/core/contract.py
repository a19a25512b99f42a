"""The ONNX contract's names: the one source for the graph's inputs and outputs, the
metadata keys' prefix and the units every value is in (docs/onnx-contract.md).

The exporter (gicnet_train) writes graphs with these names and the runtime reads them, so
the two cannot drift apart.
"""

#: Graph inputs: initial positions (B, N, 3) Å, velocities (B, N, 3) Å/fs, times (B, K) fs.
POSITIONS, VELOCITIES, TIMES = "positions", "velocities", "times"
INPUT_NAMES = (POSITIONS, VELOCITIES, TIMES)
#: Graph outputs: positions (B, K, N, 3) Å and velocities (B, K, N, 3) Å/fs at the times,
#: and the potential energy (B, K) eV (models with an energy model); an ensemble file puts
#: a member axis M in front of each.
POSITIONS_T, VELOCITIES_T, ENERGY_T = "positions_t", "velocities_t", "energy_t"
OUTPUT_NAMES = (POSITIONS_T, VELOCITIES_T)
ALL_OUTPUT_NAMES = (POSITIONS_T, VELOCITIES_T, ENERGY_T)
#: Every metadata key is this prefix plus a field of the model description; values are JSON.
METADATA_PREFIX = "gicnet."
#: The units of the contract, also written to the metadata (``gicnet.units``) and checked.
UNITS = {
    "positions": "angstrom",
    "velocities": "angstrom/fs",
    "times": "fs",
    "energy": "eV",
    "masses": "amu",
    "angles": "rad",
}
#: How the dummy reference points are attached to the molecule: fixed in the initial body
#: frame (the only frame gicnet's graphs implement; written and checked).
BODY_FRAME = "initial-body-frame"
