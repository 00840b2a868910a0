"""Per-task table of the mixture comparison: one MT-SAC agent over Pendulum + Navigation2D
(with and without per-task reward normalisation) against separate single-family agents
given the same env steps (experiments/mixture_pendulum_nav2d.toml).

    python experiments/mixture_table.py runs/cmp_mix

Each cell: the mean final evaluation return (10 episodes per task) over seeds, with a
percentile bootstrap 95% CI over seeds; the last column says whether the mixture's CI
(without normalisation, then with) overlaps the separate agents'.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from mtrl.stats import bootstrap_ci
from mtrl.tables import format_table


def arm_of(variant: str) -> str:
    """'separate', 'mixture' or 'mixture+norm' from a compare variant directory name."""
    if "+" not in variant:
        return "separate"
    return "mixture+norm" if "return_std" in variant else "mixture"


def collect(root: Path) -> dict[str, dict[str, list[float]]]:
    """arm -> task label -> final eval return per seed."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for summary in sorted(root.glob("*/seed_*/summary.json")):
        arm = arm_of(summary.parent.parent.name)
        for row in json.loads(summary.read_text())["results"]["per_task"]:
            out[arm][row["task"]].append(float(row["return"]))
    return out


def cell(values: list[float]) -> str:
    lo, hi = bootstrap_ci(values)
    return f"{np.mean(values):.1f} [{lo:.1f}, {hi:.1f}] (n={len(values)})"


def overlap(a: list[float], b: list[float]) -> bool:
    (alo, ahi), (blo, bhi) = bootstrap_ci(a), bootstrap_ci(b)
    return alo <= bhi and blo <= ahi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the compare directory (--out)")
    args = parser.parse_args()
    data = collect(args.root)
    arms = [a for a in ("separate", "mixture", "mixture+norm") if a in data]
    rows = []
    for task in data["separate"]:
        row = {"task": task}
        for arm in arms:
            row[arm] = cell(data[arm][task]) if data[arm].get(task) else "-"
        row["CIs overlap"] = " / ".join(
            "yes" if overlap(data[arm][task], data["separate"][task]) else "no"
            for arm in arms[1:]
            if data[arm].get(task)
        )
        rows.append(row)
    print(format_table(rows, ["task", *arms, "CIs overlap"]))


if __name__ == "__main__":
    main()
