"""What each recipe in experiments/ costs on this machine: it trains for a slice of wall
time (learning started early, small log interval, one torch thread), then reads the
throughput its own metrics rows report after learning started (env steps/s; tasks/s
or seconds per iteration for meta-learning) and projects the recipe's whole budget.

    python experiments/costs.py [--seconds 90] [RECIPE.toml ...]
"""

from __future__ import annotations

import argparse
import csv
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from mtrl.progress import duration
from mtrl.recipes import load_recipe

RATES = ("env_steps_per_s", "steps_per_s", "tasks_per_s")


def slice_overrides(cfg: Any) -> list[str]:
    """Settings that only change how soon the slice shows a steady rate."""
    sets = ["threads=1"]
    if hasattr(cfg, "learning_starts"):
        sets.append(f"learning_starts={min(cfg.learning_starts, 500)}")
    if hasattr(cfg, "log_every"):
        sets.append(f"log_every={min(cfg.log_every, 1000 if hasattr(cfg, 'env') else 5)}")
    return sets


def budget(cfg: Any) -> tuple[float, str]:
    """The recipe's whole budget and its unit."""
    if hasattr(cfg, "steps_per_task"):
        from mtrl.envs.vector import resolve_tasks

        return float(cfg.steps_per_task * len(resolve_tasks(cfg.env))), "env steps"
    if hasattr(cfg, "total_steps"):
        return float(cfg.total_steps), "env steps"
    return float(cfg.iterations), "iterations"


def measured_rate(rows: list[dict[str, str]], unit: str, cfg: Any) -> float | None:
    """Median throughput of the rows after learning started (the newest half)."""
    late = rows[len(rows) // 2 :]
    for key in RATES:
        values = [float(r[key]) for r in late if r.get(key)]
        if values:
            rate = statistics.median(values)
            if key == "tasks_per_s":  # sine: tasks per second -> iterations per second
                rate /= cfg.meta_batch
            return rate
    seconds = [float(r["seconds"]) for r in late if r.get("seconds")]
    return 1.0 / statistics.median(seconds) if seconds and unit == "iterations" else None


def measure(recipe: Path, seconds: float) -> str:
    _, cfg = load_recipe(recipe)
    total, unit = budget(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "mtrl.cli", "train", str(recipe), "--run-dir", str(run)]
        for s in slice_overrides(cfg):
            cmd += ["--set", s]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=600)
        path = run / "metrics.csv"
        rows = list(csv.DictReader(path.open())) if path.is_file() else []
    rate = measured_rate(rows, unit, cfg)
    if rate is None:
        return f"| {recipe.name} | {total:,.0f} {unit} | not measured in {seconds:.0f} s | |"
    if unit == "env steps":
        speed = f"{rate:,.1f} env steps/s"
    else:
        speed = f"{rate:,.1f} it/s" if rate >= 1 else f"{1 / rate:,.1f} s per iteration"
    return f"| {recipe.name} | {total:,.0f} {unit} | {speed} | {duration(total / rate)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="*", type=Path)
    parser.add_argument("--seconds", type=float, default=90.0)
    args = parser.parse_args()
    recipes = args.recipes or sorted(Path("experiments").glob("*.toml"))
    print("| recipe | budget | throughput | projected wall time |")
    print("|---|---|---|---|")
    for recipe in recipes:
        if recipe.name.startswith("rollout_"):  # `mtrl envs rollout`, not a training run
            continue
        print(measure(recipe, args.seconds), flush=True)


if __name__ == "__main__":
    main()
