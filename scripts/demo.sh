#!/usr/bin/env bash
# Set up, then a small real multi-task training run: MT-SAC on four Navigation2D goals
# (about two minutes on 2 CPU cores), ending with the per-task evaluation table and
# learning-curve / per-task plots in the run directory.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
run="runs/demo-mtsac-$(date +%Y%m%d-%H%M%S)"
.venv/bin/mtrl train experiments/mtsac_nav2d.toml --run-dir "$run" --set total_steps=20000
echo
echo "== per-task evaluation (10 episodes per task, deterministic policy) =="
.venv/bin/mtrl eval "$run" --episodes 10
.venv/bin/mtrl plot "$run"
