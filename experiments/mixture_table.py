"""Per-task table of the mixture comparison: one MT-SAC agent over Pendulum + Navigation2D
(shared or per-task output heads, with and without per-task reward normalisation)
against separate single-family agents given the same env steps
(experiments/mixture_pendulum_nav2d.toml).

    python experiments/mixture_table.py runs/cmp_mix runs/cmp_mix_mh

Each cell: the mean final evaluation return (10 episodes per task) over seeds, with a
percentile bootstrap 95% CI over seeds; the last column compares each mixture arm, in
the order of the columns, with the separate agents: "=" where the CIs overlap, "+"
where the mixture's CI lies above (higher return), "-" below.
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
    """The arm of a compare variant directory name: 'separate' (one family) or
    'mixture', with ', heads' (multihead actor and critic) and '+norm' (return_std)."""
    if "+" not in variant:
        return "separate"
    heads = ", heads" if "multihead" in variant else ""
    return f"mixture{heads}" + ("+norm" if "return_std" in variant else "")


def collect(roots: list[Path]) -> dict[str, dict[str, list[float]]]:
    """arm -> task label -> final eval return per seed."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for root in roots:
        for summary in sorted(root.glob("*/seed_*/summary.json")):
            arm = arm_of(summary.parent.parent.name)
            for row in json.loads(summary.read_text())["results"]["per_task"]:
                out[arm][row["task"]].append(float(row["return"]))
    return out


def cell(values: list[float]) -> str:
    lo, hi = bootstrap_ci(values)
    return f"{np.mean(values):.1f} [{lo:.1f}, {hi:.1f}] (n={len(values)})"


def versus(a: list[float], b: list[float]) -> str:
    """'=' if the bootstrap CIs of ``a`` and ``b`` overlap, else '+' (a above) or '-'."""
    (alo, ahi), (blo, bhi) = bootstrap_ci(a), bootstrap_ci(b)
    if alo > bhi:
        return "+"
    return "-" if ahi < blo else "="


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", type=Path, nargs="+", help="compare directories (--out)")
    args = parser.parse_args()
    data = collect(args.roots)
    order = ("separate", "mixture", "mixture+norm", "mixture, heads", "mixture, heads+norm")
    arms = [a for a in order if a in data]
    rows = []
    for task in data["separate"]:
        row = {"task": task}
        for arm in arms:
            row[arm] = cell(data[arm][task]) if data[arm].get(task) else "-"
        row["vs separate"] = " ".join(
            versus(data[arm][task], data["separate"][task]) for arm in arms[1:]
        )
        rows.append(row)
    print(format_table(rows, ["task", *arms, "vs separate"]))


if __name__ == "__main__":
    main()
