"""Golden runs: the numbers of every small recipe in tests/recipes.py, kept under
tests/golden/<name>/ so that a refactor that changes any of them fails a test.

    .venv/bin/python tests/golden.py [NAME ...]    # re-record (on purpose only)

Kept: metrics.csv without its timing columns, and summary.json's results.

A golden run trains in a process of its own on each library's portable code path
(``PORTABLE_NUMERICS``): a CPU's vector width moves the last bits of torch's, MKL's and
numpy's float results (the same recipe on an AVX-512 machine and on an AVX2 machine
differed from the 8th digit), and the files must hold on whichever machine runs the
suite. Those paths are chosen when a library loads, hence the separate process.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
GOLDEN_DIR = HERE / "golden"
TIMING = {"env_steps_per_s", "steps_per_s", "tasks_per_s", "wall_s", "fps", "seconds"}


# scalar ATen kernels, MKL's reproducible path for every x86 CPU, numpy's baseline SIMD
PORTABLE_NUMERICS = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE,STRICT",
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
}


def portable_env() -> dict[str, str]:
    """This process's environment with the portable numerics (for `mtrl` subprocesses
    whose numbers are compared with a golden run's)."""
    return {**os.environ, **PORTABLE_NUMERICS, "PYTHONUNBUFFERED": "1"}


def train(name: str, datasets: Path | None, run_dir: Path) -> None:
    """Train golden recipe ``name`` into ``run_dir`` with `mtrl train`, in a process of
    its own on the portable numerics."""
    from recipes import recipe_text

    recipe = run_dir.parent / f"{run_dir.name}.toml"
    recipe.write_text(recipe_text(name, datasets))
    cmd = [sys.executable, "-m", "mtrl.cli", "train", str(recipe), "--run-dir", str(run_dir)]
    done = subprocess.run(cmd, env=portable_env(), capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{name}: mtrl train exited {done.returncode}:\n{done.stderr}"


def metrics_text(run_dir: Path) -> str:
    """metrics.csv without its timing columns (wall clock differs run to run)."""
    with (run_dir / "metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = [k for k in (rows[0] if rows else {}) if k not in TIMING]
    out = io.StringIO()
    writer = csv.DictWriter(out, fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def results(run_dir: Path) -> Any:
    """summary.json's results, timing keys dropped."""
    doc = json.loads((run_dir / "summary.json").read_text())["results"]
    return {k: v for k, v in doc.items() if k not in TIMING}


def results_text(run_dir: Path) -> str:
    return json.dumps(results(run_dir), indent=1, sort_keys=True) + "\n"


def record(names: list[str]) -> None:
    from recipes import GOLDEN, collect_datasets

    with tempfile.TemporaryDirectory() as tmp:
        datasets = collect_datasets(Path(tmp) / "datasets")
        for name in names or list(GOLDEN):
            run = Path(tmp) / name
            train(name, datasets, run)
            out = GOLDEN_DIR / name
            out.mkdir(parents=True, exist_ok=True)
            (out / "metrics.csv").write_text(metrics_text(run))
            (out / "results.json").write_text(results_text(run))
            print(f"recorded {name}", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    record(sys.argv[1:])
