"""Arms from several ``mtrl compare`` outputs in one table, and seed-by-seed differences
between them (an ablation whose arms were run as separate comparisons).

    python experiments/compare_paired.py base=runs/abl_base_nav2d ln=runs/abl_ln_nav2d \
        --paired ln,base [--digits 2]

Each ARM=OUT[:VARIANT] is one variant of the comparison in OUT (its ``compare.json``;
the variant's label after the colon when OUT has several). The table gives each arm's
mean and IQM over (seed, task) scores with the stratified bootstrap CIs ``mtrl compare``
computed. ``--paired A,B`` (repeatable) adds A minus B on each seed both arms ran (a
seed's score is its mean over tasks), matched by seed number: the mean difference with
a percentile bootstrap 95% CI over seeds, and on how many seeds A was higher.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from mtrl.stats import bootstrap_ci
from mtrl.tables import format_table


def arm(spec: str) -> tuple[str, dict[str, Any], list[int]]:
    """NAME=OUT[:VARIANT] -> the name, the variant's summary and the comparison's seeds."""
    name, _, rest = spec.partition("=")
    out, _, label = rest.partition(":")
    path = Path(out) / "compare.json"
    if not name or not out or not path.is_file():
        raise SystemExit(f"bad arm {spec!r}: use NAME=OUT[:VARIANT], OUT holding compare.json")
    doc = json.loads(path.read_text())
    found = [v for v in doc["variants"] if not label or v["label"] == label]
    if len(found) != 1:
        labels = ", ".join(v["label"] for v in doc["variants"])
        raise SystemExit(f"arm {name!r}: name one variant of {out} after a colon ({labels})")
    return name, found[0], list(doc["seeds"])


def seed_scores(variant: dict[str, Any], seeds: list[int]) -> dict[int, float]:
    """seed -> that seed's mean score over tasks."""
    return dict(zip(seeds, variant["per_seed_mean"], strict=True))


def difference(a: dict[int, float], b: dict[int, float], digits: int) -> dict[str, str]:
    """A minus B on the seeds both have: mean [bootstrap CI], seeds where A is higher."""
    common = sorted(set(a) & set(b))
    if not common:
        raise SystemExit("the two arms share no seed")
    diffs = np.array([a[s] - b[s] for s in common])
    lo, hi = bootstrap_ci(diffs) if len(diffs) > 1 else (float(diffs[0]),) * 2
    return {
        "gain [95% CI]": f"{diffs.mean():+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]",
        "seeds better": f"{int((diffs > 0).sum())}/{len(common)}",
    }


def _ci(v: dict[str, Any], key: str, digits: int) -> str:
    return f"{v[key]:.{digits}f} [{v[key + '_low']:.{digits}f}, {v[key + '_high']:.{digits}f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arms", nargs="+", metavar="ARM=OUT[:VARIANT]")
    parser.add_argument("--paired", action="append", default=[], metavar="A,B")
    parser.add_argument("--digits", type=int, default=2)
    args = parser.parse_args()
    arms = {name: (v, seeds) for name, v, seeds in map(arm, args.arms)}
    rows = [
        {
            "arm": name,
            "seeds": len(seeds),
            "mean [95% CI]": _ci(v, "mean", args.digits),
            "IQM [95% CI]": _ci(v, "iqm", args.digits),
        }
        for name, (v, seeds) in arms.items()
    ]
    print(format_table(rows, ["arm", "seeds", "mean [95% CI]", "IQM [95% CI]"]))
    pairs = []
    for spec in args.paired:
        a, _, b = spec.partition(",")
        if a not in arms or b not in arms:
            raise SystemExit(f"--paired {spec!r}: name two of {', '.join(arms)}")
        diff = difference(seed_scores(*arms[a]), seed_scores(*arms[b]), args.digits)
        pairs.append({"A minus B": f"{a} - {b}"} | diff)
    if pairs:
        print()
        print(format_table(pairs, ["A minus B", "gain [95% CI]", "seeds better"]))


if __name__ == "__main__":
    main()
