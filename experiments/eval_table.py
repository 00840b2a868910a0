"""Per-task success of ``mtrl eval`` files over seeds, a paired gain between two of them,
and a claim's bar read on each seed (the MT10 claim: mean >= 0.97, every task >= 0.9).

    python experiments/eval_table.py runs/mt10_claim/base/seed_1 runs/mt10_claim/base/seed_2 \
        --evals clone=eval_step_0.json,final=eval.json --bar 0.97 --task-bar 0.9

Each RUN is one seed's run directory; ``--evals NAME=FILE,...`` names the evaluation
files (written by ``mtrl eval RUN [--checkpoint STEP] --episodes 50``) read from every
run, one column each. A task's cell is its success averaged over seeds with a percentile
bootstrap 95% CI over seeds, then each seed's value. With two or more files, the last
minus the first per seed (each seed's mean over tasks) is the paired gain. ``--bar``
and ``--task-bar`` are read on the last file, seed by seed, with the margin.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from mtrl.stats import bootstrap_ci
from mtrl.tables import format_table


def task_success(doc: dict[str, Any]) -> dict[str, float]:
    """An ``mtrl eval`` document -> task label -> success rate, in task-id order."""
    rows = sorted(doc["per_task"], key=lambda r: int(r["task_id"]))
    return {str(r["task"]): float(r["success"]) for r in rows}


def cell(values: list[float]) -> str:
    """Mean [95% bootstrap CI over seeds] (the value alone for one seed), then each seed's."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    lo, hi = bootstrap_ci(values)
    per_seed = ", ".join(f"{v:.2f}" for v in values)
    return f"{np.mean(values):.2f} [{lo:.2f}, {hi:.2f}]; {per_seed}"


def bar_reading(success: dict[str, float], bar: float, task_bar: float) -> str:
    """Whether one seed's evaluation meets a claim: its mean over tasks against ``bar``
    and each task against ``task_bar``, with the margins."""
    mean = float(np.mean(list(success.values())))
    under = {t: s for t, s in success.items() if s < task_bar}
    # success rates are sums of k/episodes: a mean equal to the bar up to rounding meets it
    verdict = "holds" if mean >= bar - 1e-9 and not under else "does not hold"
    text = f"mean {mean:.3f} ({mean - bar:+.3f} against {bar})"
    if under:
        text += f"; under {task_bar}: " + ", ".join(f"{t} {s:.2f}" for t, s in under.items())
    else:
        text += f"; every task >= {task_bar}"
    return f"{verdict}: {text}"


def paired_gain(first: list[float], last: list[float]) -> str:
    """last - first per seed: mean [95% bootstrap CI over seeds], seeds higher."""
    diffs = [b - a for a, b in zip(first, last, strict=True)]
    higher = sum(d > 0 for d in diffs)
    per_seed = ", ".join(f"{d:+.3f}" for d in diffs)
    if len(diffs) == 1:
        return f"{diffs[0]:+.3f} (one seed)"
    lo, hi = bootstrap_ci(diffs)
    mean = float(np.mean(diffs))
    return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}], {higher}/{len(diffs)} higher ({per_seed})"


def load(runs: list[Path], files: dict[str, str]) -> dict[str, list[dict[str, float]]]:
    """Column name -> each run's task successes from that column's file."""
    out: dict[str, list[dict[str, float]]] = {}
    for name, file in files.items():
        out[name] = []
        for run in runs:
            path = run / file
            if not path.is_file():
                raise SystemExit(f"{path} is missing: run `mtrl eval {run} --episodes 50` first")
            out[name].append(task_success(json.loads(path.read_text())))
    tasks = [list(s) for seeds in out.values() for s in seeds]
    if any(t != tasks[0] for t in tasks):
        raise SystemExit("the evaluation files name different tasks: use runs of one recipe")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN")
    parser.add_argument("--evals", default="final=eval.json", metavar="NAME=FILE,...")
    parser.add_argument("--bar", type=float, help="the claim's bar on the mean over tasks")
    parser.add_argument("--task-bar", type=float, default=0.0, help="the bar on every task")
    args = parser.parse_args()
    files = dict(spec.partition("=")[::2] for spec in args.evals.split(","))
    if not all(files) or not all(files.values()):
        raise SystemExit(f"bad --evals {args.evals!r}: use NAME=FILE[,NAME=FILE...]")
    columns = load(args.runs, files)
    tasks = list(next(iter(columns.values()))[0])
    rows = [
        {"task": t, **{n: cell([s[t] for s in seeds]) for n, seeds in columns.items()}}
        for t in tasks
    ]
    means = {n: [float(np.mean(list(s.values()))) for s in seeds] for n, seeds in columns.items()}
    rows.append({"task": "mean over tasks", **{n: cell(m) for n, m in means.items()}})
    print(f"seeds: {', '.join(r.name for r in args.runs)}")
    print(format_table(rows, ["task", *columns]))
    names = list(columns)
    if len(names) > 1:
        gain = paired_gain(means[names[0]], means[names[-1]])
        print(f"\n{names[-1]} - {names[0]}, paired by seed: {gain}")
    if args.bar is not None:
        print()
        for run, success in zip(args.runs, columns[names[-1]], strict=True):
            print(f"{run.name}: {bar_reading(success, args.bar, args.task_bar)}")


if __name__ == "__main__":
    main()
