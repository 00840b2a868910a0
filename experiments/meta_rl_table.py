"""Held-out adaptation of meta-RL runs, one row per learner over seeds, from each run's
``adapt.json`` (written by ``mtrl adapt RUN``).

    python experiments/meta_rl_table.py \
        "MAML (clip)=maml (meta-learned)@runs/maml_clip_nav2d_s0,runs/maml_clip_nav2d_s1" \
        "RL²=RL² (memory across episodes)@runs/rl2_nav2d_s0,runs/rl2_nav2d_s1" [--after 1]

Each ARM=CURVE@DIR[,DIR...] is one learner: the curve of that name in each run's
``adapt.json`` (or in a JSON file ``mtrl adapt --json`` wrote, given in place of DIR),
one run per seed. Columns: the metric before adaptation (point 0) and
after ``--after`` steps (MAML: inner gradient steps; RL² and PEARL: episodes of
experience), each a mean over seeds with a percentile bootstrap 95% CI over seeds, the
per-seed values after adaptation, and the env steps each run trained on (``env_steps``
of its summary; runs that predate it show "-").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mtrl.stats import bootstrap_ci
from mtrl.tables import format_table


def _arm(spec: str) -> tuple[str, str, list[Path]]:
    name, _, rest = spec.partition("=")
    curve, _, dirs = rest.rpartition("@")
    if not name or not curve or not dirs:
        raise SystemExit(f"bad arm {spec!r}: use NAME=CURVE@DIR[,DIR...]")
    return name, curve, [Path(d) for d in dirs.split(",")]


def _cell(values: list[float]) -> str:
    mean = float(np.mean(values))
    if len(values) < 2:
        return f"{mean:.1f}"
    lo, hi = bootstrap_ci(values)
    return f"{mean:.1f} [{lo:.1f}, {hi:.1f}]"


def row(name: str, curve: str, runs: list[Path], after: int) -> dict[str, str]:
    before, post, steps = [], [], []
    for path in runs:  # a run directory (its adapt.json) or an adapt JSON file
        run = path.parent if path.suffix == ".json" else path
        doc = json.loads((path if path.suffix == ".json" else run / "adapt.json").read_text())
        points = doc["curves"][curve]
        metric = doc["metric"]
        before.append(float(points[0][metric]))
        post.append(float(points[after][metric]))
        results = json.loads((run / "summary.json").read_text())["results"]
        steps.append(results.get("env_steps"))
    known = [s for s in steps if s is not None]
    return {
        "learner": name,
        "seeds": str(len(runs)),
        "env steps (M)": f"{np.mean(known) / 1e6:.2f}" if known else "-",
        "before": _cell(before),
        f"after {after}": _cell(post),
        "per seed after": ", ".join(f"{v:.1f}" for v in post),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arms", nargs="+", metavar="NAME=CURVE@DIR[,DIR...]")
    parser.add_argument("--after", type=int, default=1)
    args = parser.parse_args()
    rows = [row(*_arm(spec), args.after) for spec in args.arms]
    print(format_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
