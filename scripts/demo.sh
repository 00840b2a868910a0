#!/usr/bin/env bash
# Set up, then a small real multi-task training run: MT-SAC on four Navigation2D goals
# (20,000 env steps), ending with the per-task evaluation table and learning-curve /
# per-task plots in the run directory. Each stage prints the seconds it took.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
bash scripts/setup.sh
t1=$SECONDS
run="runs/demo-mtsac-$(date +%Y%m%d-%H%M%S)"
.venv/bin/mtrl train experiments/mtsac_nav2d.toml --run-dir "$run" --set total_steps=20000
t2=$SECONDS
echo
echo "== per-task evaluation (10 episodes per task, deterministic policy) =="
.venv/bin/mtrl eval "$run" --episodes 10
.venv/bin/mtrl plot "$run"
echo "mtrl demo: set-up $((t1 - t0)) s, training $((t2 - t1)) s, evaluation and plots $((SECONDS - t2)) s"
