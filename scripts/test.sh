#!/usr/bin/env bash
# Set up, then run the checks: ruff, mypy, the import layers (import-linter) and the whole
# pytest suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check mtrl tests benchmarks experiments
.venv/bin/ruff format --check mtrl tests benchmarks experiments
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
.venv/bin/python -m pytest -n 2 "$@"
