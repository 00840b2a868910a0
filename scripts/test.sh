#!/usr/bin/env bash
# Set up, then run the checks: ruff, mypy and the whole pytest suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check mtrl tests benchmarks experiments
.venv/bin/ruff format --check mtrl tests benchmarks experiments
.venv/bin/mypy
.venv/bin/python -m pytest -n 2 "$@"
