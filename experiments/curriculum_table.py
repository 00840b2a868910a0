"""Curriculum arms side by side on their target tasks: steps to mastery and the target
tasks' evaluation return at the stop, per arm and paired seed by seed
(docs/results/curriculum-halfcheetah.md).

    python experiments/curriculum_table.py \
        curriculum=runs/cmp/unlock_sampler=either_sequential \
        direct=runs/cmp/unlock_sampler=all_targets --paired curriculum,direct

Each ARM=DIR is one variant of an ``mtrl compare`` of a curriculum recipe: DIR holds
``seed_<s>/summary.json``. A run's steps to mastery are the env steps at which its last
target task was mastered, or the run's steps if one never was (as ``mtrl compare``
counts them); "on targets" are the env steps it spent on its target tasks; the return
is its final evaluation's mean over the target tasks. ``--paired A,B`` gives A minus B
on each seed both arms ran, with a percentile bootstrap 95% CI over those seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from mtrl.compare import steps_to_mastery
from mtrl.stats import bootstrap_ci
from mtrl.tables import format_table


def target_outcome(results: dict[str, Any]) -> dict[str, float]:
    """One run's steps to mastery (its steps if never mastered), whether it mastered,
    its env steps on the target tasks and its final return on them."""
    targets = [t for t in results["curriculum"] if t.get("target", True)]
    steps, mastered = steps_to_mastery(results)
    ids = {t["task_id"] for t in targets}
    returns = [p["return"] for p in results["per_task"] if p["task_id"] in ids]
    return {
        "steps": steps,
        "mastered": float(mastered),
        "on_targets": float(sum(t["steps"] for t in targets)),
        "return": float(np.mean(returns)),
    }


def read_arm(directory: Path) -> dict[int, dict[str, float]]:
    """seed -> outcome, for every finished run (one with a summary.json) under DIR."""
    out = {}
    for summary in sorted(directory.glob("seed_*/summary.json")):
        doc = json.loads(summary.read_text())
        if "curriculum" not in doc.get("results", {}):
            raise SystemExit(f"{summary}: not a curriculum run (its recipe has no [curriculum])")
        out[int(doc["seed"])] = target_outcome(doc["results"])
    if not out:
        raise SystemExit(f"{directory}: no seed_<s>/summary.json (a finished run) there")
    return out


def _interval(values: list[float], stat: str, fmt: str) -> str:
    lo, hi = bootstrap_ci(values, stat) if len(values) > 1 else (values[0], values[0])
    centre = float(np.median(values) if stat == "median" else np.mean(values))
    return f"{centre:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def arm_row(name: str, runs: dict[int, dict[str, float]]) -> dict[str, str]:
    """The arm's median steps to mastery and mean target return, with bootstrap CIs."""
    seeds = sorted(runs)
    steps = [runs[s]["steps"] for s in seeds]
    return {
        "arm": name,
        "mastered": f"{int(sum(runs[s]['mastered'] for s in seeds))}/{len(seeds)}",
        "median steps to mastery [95% CI]": _interval(steps, "median", ",.0f"),
        "per seed": " ".join(f"{v / 1000:.1f}k" for v in steps),
        "steps on targets": " ".join(f"{runs[s]['on_targets'] / 1000:.1f}k" for s in seeds),
        "target return [95% CI]": _interval([runs[s]["return"] for s in seeds], "mean", ".1f"),
    }


def paired_row(
    name: str, a: dict[int, dict[str, float]], b: dict[int, dict[str, float]]
) -> dict[str, str]:
    """A minus B on the seeds both ran: steps to mastery and target return."""
    common = sorted(set(a) & set(b))
    if not common:
        raise SystemExit(f"{name}: the two arms share no seed")
    row = {"A minus B": name, "seeds": str(len(common))}
    for key, fmt, label in [
        ("steps", "+,.0f", "steps to mastery"),
        ("return", "+.1f", "target return"),
    ]:
        diffs = [a[s][key] - b[s][key] for s in common]
        row[f"{label} [95% CI]"] = _interval(diffs, "mean", fmt)
        row[f"{label}: A higher"] = f"{sum(d > 0 for d in diffs)}/{len(common)}"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arms", nargs="+", metavar="ARM=DIR")
    parser.add_argument("--paired", action="append", default=[], metavar="A,B")
    args = parser.parse_args()
    arms = {}
    for spec in args.arms:
        name, _, directory = spec.partition("=")
        if not name or not directory:
            raise SystemExit(f"bad arm {spec!r}: use NAME=DIR")
        arms[name] = read_arm(Path(directory))
    rows = [arm_row(name, runs) for name, runs in arms.items()]
    print(format_table(rows, list(rows[0])))
    pairs = []
    for spec in args.paired:
        a, _, b = spec.partition(",")
        if a not in arms or b not in arms:
            raise SystemExit(f"--paired {spec!r}: name two of {', '.join(arms)}")
        pairs.append(paired_row(f"{a} - {b}", arms[a], arms[b]))
    if pairs:
        print()
        print(format_table(pairs, list(pairs[0])))


if __name__ == "__main__":
    main()
