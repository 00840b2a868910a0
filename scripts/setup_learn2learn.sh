#!/usr/bin/env bash
# Optional: a separate .venv-l2l with learn2learn 0.2.0 beside mtrl, for the
# learn2learn backend, the gradient-agreement test and `mtrl bench meta`.
# learn2learn 0.2.0 ships C files generated for Python <= 3.10 (longintrepr.h), so
# its sdist is rebuilt here with a current Cython. It imports torchvision and the
# old `gym`, which is why it is kept out of the default .venv (torchvision pins torch).
# --packages-only: everything but mtrl itself (CI installs those while the main suite runs).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${L2L_VENV:-.venv-l2l}
TORCH=${L2L_TORCH:-2.14.1}
TORCHVISION=${L2L_TORCHVISION:-0.29.1}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
PIP=("$VENV/bin/python" -m pip install -q --no-compile)  # imports compile what they use
if ! "$VENV/bin/python" -c "import torchvision" 2>/dev/null; then
  "${PIP[@]}" "torch==$TORCH" "torchvision==$TORCHVISION"
fi
if ! "$VENV/bin/python" -c "import learn2learn" 2>/dev/null; then
  "${PIP[@]}" "cython>=3" setuptools wheel "gym==0.26.2" scipy requests tqdm
  build=$(mktemp -d)
  "$VENV/bin/python" -m pip download -q --no-deps --no-binary :all: "learn2learn==0.2.0" -d "$build"
  tar xzf "$build"/learn2learn-0.2.0.tar.gz -C "$build"
  src="$build/learn2learn-0.2.0"
  rm -rf "$src/.eggs"
  for pyx in "$src"/learn2learn/data/*.pyx; do
    "$VENV/bin/cython" -3 "$pyx"   # regenerates the .c beside it for this Python
  done
  "${PIP[@]}" --no-deps --no-build-isolation "$src"
  rm -rf "$build"
fi
if [ "${1:-}" = "--packages-only" ]; then
  exit 0
fi
"${PIP[@]}" -e ".[dev]"
"$VENV/bin/python" -c "import learn2learn, torch; print('learn2learn', learn2learn.__version__, 'torch', torch.__version__)"
