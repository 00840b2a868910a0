"""Golden runs: the numbers of every small recipe in tests/recipes.py, kept under
tests/golden/<name>/ so that a refactor that changes any of them fails a test.

    .venv/bin/python tests/golden.py [NAME ...]    # re-record (on purpose only)

Kept: metrics.csv without its timing columns, and summary.json's results.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
GOLDEN_DIR = HERE / "golden"
TIMING = {"env_steps_per_s", "steps_per_s", "tasks_per_s", "wall_s", "fps", "seconds"}


def train(name: str, datasets: Path | None, run_dir: Path) -> None:
    """Train golden recipe ``name`` into ``run_dir`` as `mtrl train` does."""
    from recipes import recipe_text

    from mtrl.cli import main

    recipe = run_dir.parent / f"{run_dir.name}.toml"
    recipe.write_text(recipe_text(name, datasets))
    code = main(["train", str(recipe), "--run-dir", str(run_dir)])
    assert code == 0, f"{name}: mtrl train exited {code}"


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
