#!/usr/bin/env bash
# A new molecule on a CPU with gicnet's defaults: simulate -> train -> export -> evaluate.
#
#     bash recipes/own_molecule.sh [MOLECULE] [OUT]       # or: make own-molecule
#
# MOLECULE: an ase.build.molecule name or a structure file (default CH3COOH, acetic acid);
# OUT: working folder (default runs/own-CH3COOH).  Reference data: GFN2-xTB, 300 K, the
# `gicnet simulate` defaults (2 ps Langevin equilibration, 10 ps NVE at 0.5 fs) for 10
# training trajectories (seeds 0-9) and 2 held-out ones (seeds 100-101).  Training uses the
# `gicnet train` defaults (basis head, early stopping, best checkpoint kept) on the
# training folder's trajectory files.  Every
# step's wall time goes to OUT/wall_times.txt; an interrupted run continues where it
# stopped (finished trajectories are kept, training resumes).
set -euo pipefail
molecule=${1:-CH3COOH}
out=${2:-runs/own-${molecule}}
gicnet=${GICNET:-gicnet}
mkdir -p "$out"
times="$out/wall_times.txt"
step() {  # step NAME COMMAND...: run, and append its wall time in seconds
    local name=$1 start
    shift
    start=$(date +%s)
    "$@"
    echo "$name $(( $(date +%s) - start )) s" | tee -a "$times"
}
step simulate-train $gicnet simulate "$molecule" --engine gfn2 --n-trajectories 10 --seed 0 \
    --workers 2 --out "$out/data/train"
step simulate-heldout $gicnet simulate "$molecule" --engine gfn2 --n-trajectories 2 --seed 100 \
    --workers 2 --out "$out/data/heldout"
resume=()
[[ -f "$out/run/run.json" ]] && resume=(--resume)
step train $gicnet train "$out/data/train" --out "$out/run" "${resume[@]}"
step export $gicnet export "$out/run" --out "$out/model"
step evaluate $gicnet evaluate --model "$out/model" --reference "$out/data/heldout" \
    --out "$out/eval" --long-starts 2 --long-duration-fs 10000 --engine gfn2 \
    --energy-every 100 --workers 2
