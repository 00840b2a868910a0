#!/usr/bin/env bash
# Optional: set up .venv-l2l (learn2learn 0.2.0 rebuilt for this Python) and run the
# learn2learn agreement tests and the mtrl-vs-learn2learn meta-training benchmark there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_learn2learn.sh
.venv-l2l/bin/python -m pytest -q -p no:cacheprovider tests/test_learn2learn.py "$@"
.venv-l2l/bin/mtrl bench meta --repeats 3
