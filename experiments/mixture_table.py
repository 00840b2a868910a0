"""Per-task table of the mixture comparison: one MT-SAC agent over Pendulum + Navigation2D
(shared or per-task output heads, with and without per-task reward normalisation)
against separate single-family agents given the same env steps
(experiments/mixture_pendulum_nav2d.toml).

    python experiments/mixture_table.py runs/cmp_mix runs/cmp_mix_mh

Each cell: the mean final evaluation return (10 episodes per task) over seeds, with a
percentile bootstrap 95% CI over seeds; the last column compares each mixture arm, in
the order of the columns, with the separate agents: "=" where the CIs overlap, "+"
where the mixture's CI lies above (higher return), "-" below. Arms come from each
run's config.toml (`+popart`: a `[sac.popart]` table), so any compare directories of
this recipe can be given.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from mtrl.stats import bootstrap_ci
from mtrl.tables import format_table


def arm_of(config: dict[str, Any]) -> str:
    """A run's arm from its resolved recipe: 'separate' (one family) or 'mixture', with
    ', heads' (multihead actor and critic), '+norm' (return_std) and '+popart'."""
    names = config["env"]["name"]
    if isinstance(names, str) or len(names) < 2:
        return "separate"
    sac = config.get("sac", {})
    heads = ", heads" if sac.get("critic", {}).get("arch") == "multihead" else ""
    norm = "+norm" if config.get("reward_norm") == "return_std" else ""
    return f"mixture{heads}{norm}" + ("+popart" if "popart" in sac else "")


def collect(roots: list[Path]) -> dict[str, dict[str, list[float]]]:
    """arm -> task label -> final eval return per seed."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for root in roots:
        for summary in sorted(root.glob("*/seed_*/summary.json")):
            arm = arm_of(tomllib.loads((summary.parent / "config.toml").read_text()))
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
    order = ["separate", "mixture", "mixture+norm", "mixture, heads", "mixture, heads+norm"]
    arms = [a for a in order if a in data] + sorted(set(data) - set(order))
    base = arms[0]  # the separate agents, or the first mixture arm without them
    rows = []
    for task in data[base]:
        row = {"task": task}
        for arm in arms:
            row[arm] = cell(data[arm][task]) if data[arm].get(task) else "-"
        row[f"vs {base}"] = " ".join(
            versus(data[arm][task], data[base][task]) if data[arm].get(task) else "?"
            for arm in arms[1:]
        )
        rows.append(row)
    print(format_table(rows, ["task", *arms, f"vs {base}"]))


if __name__ == "__main__":
    main()
