#!/usr/bin/env bash
# Create .venv and install mtrl with its dev tools. Safe to re-run: a line per stage
# with the seconds so far (a fresh set-up downloads ~1 GB; once .venv exists it only
# checks the installed packages).
# torch: the CPU wheel is installed first so that no multi-GB CUDA build is pulled in.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
t0=$SECONDS
say() { echo "mtrl setup [$((SECONDS - t0)) s]: $*"; }
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$PY" --version 2>&1)"
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  say "installing torch 2.13.0 (the CPU build)"
  .venv/bin/python -m pip install -q "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi
say "installing mtrl and its dependencies (gymnasium, MuJoCo, Meta-World, SB3, Minari, dev tools)"
.venv/bin/python -m pip install -q -e ".[dev]"
say "ready"
