#!/usr/bin/env bash
# Set up, then roll Meta-World's scripted experts and a random policy through mtrl's
# MT10 vector env and print the per-task tables (a run directory is written under runs/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
stamp=$(date +%Y%m%d-%H%M%S)
echo "== MT10, Meta-World's scripted experts (1 episode per task) =="
.venv/bin/mtrl envs rollout MT10 --policy expert --episodes 1 --run-dir "runs/demo-expert-$stamp"
echo
echo "== MT10, random policy =="
.venv/bin/mtrl envs rollout MT10 --policy random --episodes 1 --run-dir "runs/demo-random-$stamp"
