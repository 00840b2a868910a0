"""Success against env steps and wall time for MT-SAC runs with and without
demonstrations (experiments/aqil_mt10.toml and its BC-only / from-scratch variants).

    python experiments/demos_table.py aqil=runs/aqil_mt10 scratch=runs/scratch_mt10 \
        bc=runs/bc_mse,runs/bc_mse_s1,runs/bc_mse_s2 [--every 50000] [--tasks]

Each ARM=DIR[,DIR...] is one arm, one run directory per seed. A row per evaluated env
step (every ``--every``): mean success over tasks, averaged over the arm's seeds with a
percentile bootstrap 95% CI over seeds where there are several (a row names how many
seeds reached it when some did not), and the wall time to
that step (hours, the first seed's run; warm start included). Step 0 is the clone
before any RL (logged by runs with ``demos.bc_steps``). ``--tasks`` adds each arm's
per-task success at its last evaluation. ``--window A:B`` adds, per arm, each seed's
mean success over its evaluations at env steps A..B minus its own clone's (step 0): a
paired estimate of what RL fine-tuning added, less noisy than one evaluation.
``--plot PATH`` draws the arms' success curves with their CI bands over seeds (at the
steps every seed of an arm reached), as ``mtrl compare``'s ``compare_curves.png``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from mtrl.curves import arm_bands, plot_bands
from mtrl.stats import bootstrap_ci
from mtrl.tables import format_table


def evaluations(run: Path) -> dict[int, dict[str, float]]:
    """env step -> the run's evaluation row (eval_success, success/ID) there; a run that
    made no RL update (BC alone) has its last evaluation at step 0."""
    out: dict[int, dict[str, float]] = {}
    updated = False
    with (run / "metrics.csv").open() as f:
        for row in csv.DictReader(f):
            updated = updated or float(row.get("updates") or 0) > 0
            if row.get("eval_success"):
                out[int(row["step"])] = {k: float(v) for k, v in row.items() if v and k != "step"}
    if not updated and out:
        return {0: out[max(out)]}
    return out


def wall_hours(run: Path) -> dict[int, float]:
    """env step -> hours since the run started (from the cumulative env steps/s the loop
    logs; the warm start is counted in it)."""
    out: dict[int, float] = {}
    with (run / "metrics.csv").open() as f:
        for row in csv.DictReader(f):
            rate = row.get("env_steps_per_s")
            if rate and float(rate) > 0:
                out[int(row["step"])] = int(row["step"]) / float(rate) / 3600.0
    return out


def task_labels(run: Path) -> list[str]:
    """The run's task labels, by task id (from its recipe)."""
    from mtrl.envs.vector import resolve_tasks
    from mtrl.recipes import load_run

    _, _, recipe = load_run(run)
    return [t.label for t in resolve_tasks(recipe.env)]


def cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    lo, hi = bootstrap_ci(values)
    return f"{np.mean(values):.2f} [{lo:.2f}, {hi:.2f}]"


def gain_over_clone(ev: dict[int, dict[str, float]], low: int, high: int) -> float | None:
    """Mean success of a run's evaluations at env steps ``low..high`` (step 0 excluded)
    minus its clone's (step 0); None without a clone or evaluations there."""
    inside = [r["eval_success"] for s, r in ev.items() if low <= s <= high and s > 0]
    if 0 not in ev or not inside:
        return None
    return float(np.mean(inside)) - ev[0]["eval_success"]


def window_table(evals: dict[str, list[dict[int, dict[str, float]]]], low: int, high: int) -> str:
    """Per arm: each seed's gain over its clone in the window, and their mean with CI."""
    rows = []
    for name, runs in evals.items():
        gains = [g for g in (gain_over_clone(ev, low, high) for ev in runs) if g is not None]
        rows.append(
            {
                "arm": name,
                f"gain over clone, {low:,}-{high:,}": cell(gains) if gains else "",
                "per seed": ", ".join(f"{g:+.2f}" for g in gains),
            }
        )
    return format_table(rows, list(rows[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arms", nargs="+", metavar="ARM=DIR[,DIR...]")
    parser.add_argument("--every", type=int, default=50_000)
    parser.add_argument("--tasks", action="store_true", help="per-task success at the end")
    parser.add_argument("--window", default=None, metavar="A:B", help="fine-tuning vs clone")
    parser.add_argument("--plot", type=Path, help="a PNG of the arms' success curves")
    parser.add_argument("--title", default="", help="the plot's first title line")
    parser.add_argument("--bar", type=float, help="a dashed line on the plot (a claim's bar)")
    args = parser.parse_args()
    arms = {}
    for spec in args.arms:
        name, _, dirs = spec.partition("=")
        arms[name] = [Path(d) for d in dirs.split(",")]
    evals = {name: [evaluations(d) for d in dirs] for name, dirs in arms.items()}
    steps = sorted({s for runs in evals.values() for ev in runs for s in ev if s % args.every == 0})
    rows = []
    for step in steps:
        row: dict[str, object] = {"env steps": f"{step:,}"}
        for name, runs in evals.items():
            values = [ev[step]["eval_success"] for ev in runs if step in ev]
            hours = wall_hours(arms[name][0]).get(step)
            when = f" ({hours:.1f} h)" if hours is not None and step else ""
            short = f" ({len(values)} of {len(runs)} seeds)" if len(values) < len(runs) else ""
            row[name] = cell(values) + short + when if values else ""
        rows.append(row)
    print(format_table(rows, ["env steps", *arms]))
    if args.window:
        low, _, high = args.window.partition(":")
        print()
        print(window_table(evals, int(low), int(high)))
    if args.plot:
        bands = arm_bands(arms, "eval_success")
        print(f"wrote {plot_bands(bands, 'eval_success', args.plot, args.title, args.bar)}")
    if args.tasks:
        print()
        task_rows = []
        first = next(iter(evals.values()))[0]
        ids = sorted(int(k.split("/")[1]) for k in next(iter(first.values())) if "success/" in k)
        labels = task_labels(next(iter(arms.values()))[0])
        for tid in ids:
            trow: dict[str, object] = {"task": labels[tid] if tid < len(labels) else tid}
            for name, runs in evals.items():
                last = [ev[max(ev)] for ev in runs if ev]
                trow[name] = cell([r[f"success/{tid}"] for r in last])
            task_rows.append(trow)
        print(format_table(task_rows, ["task", *arms]))


if __name__ == "__main__":
    main()
