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
per-seed values after adaptation (``--digits`` decimals: 2 for success rates), and
the env steps each learner trained on (a baseline's from ``env_steps`` of the
``adapt.json``, the run's own from ``env_steps`` of its summary; runs that predate
these show the run's or "-"). The metric is the one ``mtrl adapt`` chose (success on
Meta-World, else return); ``--metric return`` reads the return a success run also
records, which still separates learners where every success rate is near 0.

``--paired A,B`` (repeatable) adds the seed-by-seed difference A minus B after
adaptation (the arms' runs paired in the order given, so give each arm its seeds in
the same order), and ``--gain A`` the difference A's adaptation makes (after minus
before), each a mean with a bootstrap CI over seeds and the per-seed values.
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


def _cell(values: list[float], digits: int) -> str:
    mean = float(np.mean(values))
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    lo, hi = bootstrap_ci(values)
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def points(
    curve: str, runs: list[Path], after: int, metric: str | None = None
) -> tuple[list[float], list[float], list]:
    """Each run's metric (``metric``, or the one its report chose) before and after
    adaptation, and the env steps the curve's learner trained on."""
    before, post, steps = [], [], []
    for path in runs:  # a run directory (its adapt.json) or an adapt JSON file
        run = path.parent if path.suffix == ".json" else path
        doc = json.loads((path if path.suffix == ".json" else run / "adapt.json").read_text())
        curve_points = doc["curves"][curve]
        key = metric or doc["metric"]
        if key not in curve_points[0]:
            raise SystemExit(
                f"{run}: its curves have no {key!r}; use one of {sorted(curve_points[0])}"
            )
        if after >= len(curve_points):
            raise SystemExit(
                f"{run}: its {curve!r} curve ends after {len(curve_points) - 1} step(s); "
                f"give --after {len(curve_points) - 1} or less, or adapt with more --steps"
            )
        before.append(float(curve_points[0][key]))
        post.append(float(curve_points[after][key]))
        results = json.loads((run / "summary.json").read_text())["results"]
        steps.append(doc.get("env_steps", {}).get(curve, results.get("env_steps")))
    return before, post, steps


def row(
    name: str, curve: str, runs: list[Path], after: int, digits: int, metric: str | None = None
) -> dict[str, str]:
    before, post, steps = points(curve, runs, after, metric)
    known = [s for s in steps if s is not None]
    return {
        "learner": name,
        "seeds": str(len(runs)),
        "env steps (M)": f"{np.mean(known) / 1e6:.2f}" if known else "-",
        "before": _cell(before, digits),
        f"after {after}": _cell(post, digits),
        "per seed after": ", ".join(f"{v:.{digits}f}" for v in post),
    }


def difference(label: str, a: list[float], b: list[float], digits: int = 1) -> str:
    """``label: mean [CI] (per seed ...)`` of the paired differences ``a - b``."""
    if len(a) != len(b):
        raise SystemExit(f"{label}: {len(a)} and {len(b)} seeds cannot be paired")
    diff = [x - y for x, y in zip(a, b, strict=True)]
    mean = float(np.mean(diff))
    ci = ""
    if len(diff) > 1:
        lo, hi = bootstrap_ci(diff)
        ci = f" [{lo:+.{digits}f}, {hi:+.{digits}f}]"
    each = ", ".join(f"{d:+.{digits}f}" for d in diff)
    return f"{label}: {mean:+.{digits}f}{ci} (per seed {each})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arms", nargs="+", metavar="NAME=CURVE@DIR[,DIR...]")
    parser.add_argument("--after", type=int, default=1)
    parser.add_argument("--paired", action="append", default=[], metavar="A,B")
    parser.add_argument("--gain", action="append", default=[], metavar="A")
    parser.add_argument("--digits", type=int, default=1, help="decimals (2 for success)")
    parser.add_argument("--metric", help="return or success (default: the report's own)")
    args = parser.parse_args()
    arms = [_arm(spec) for spec in args.arms]
    rows = [row(*arm, args.after, args.digits, args.metric) for arm in arms]
    print(format_table(rows, list(rows[0])))
    values = {name: points(curve, runs, args.after, args.metric)[:2] for name, curve, runs in arms}
    for spec in args.paired:
        a, _, b = spec.partition(",")
        if a not in values or b not in values:
            raise SystemExit(f"--paired {spec!r}: name two of the arms {sorted(values)}")
        label = f"{a} - {b}, after {args.after}"
        print(difference(label, values[a][1], values[b][1], args.digits))
    for name in args.gain:
        if name not in values:
            raise SystemExit(f"--gain {name!r}: name one of the arms {sorted(values)}")
        label = f"{name}, after {args.after} - before"
        print(difference(label, values[name][1], values[name][0], args.digits))


if __name__ == "__main__":
    main()
