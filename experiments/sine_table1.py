"""Reproduce Table 1 of Meta-SGD (Li et al. 2017): sine regression MSE, 5/10/20 shots.

    python experiments/sine_table1.py [--out runs/sine_table1] [--workers 2] [--set k=v ...]

Trains MAML and Meta-SGD for each number of shots from experiments/sine_maml.toml
(two processes at a time, one thread each), evaluates each on the same 600 held-out
tasks after one inner step, and prints the table beside the published numbers.
Finished cells are reused, so an interrupted reproduction continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mtrl.recipes import load_recipe
from mtrl.runs import RunDir
from mtrl.tables import format_table

HERE = Path(__file__).resolve().parent
PUBLISHED = {  # (mean, 95% CI) from Li et al. 2017, Table 1
    ("maml", 5): (1.13, 0.18),
    ("maml", 10): (0.77, 0.11),
    ("maml", 20): (0.48, 0.08),
    ("metasgd", 5): (0.90, 0.16),
    ("metasgd", 10): (0.53, 0.09),
    ("metasgd", 20): (0.31, 0.05),
}


def _cell(out: str, algorithm: str, shots: int, sets: list[str]) -> tuple[str, int, dict]:
    from mtrl.kinds.sine import train_regression

    run_dir = Path(out) / f"{algorithm}_{shots}shot"
    if (run_dir / "summary.json").is_file():
        return algorithm, shots, RunDir.open(run_dir).read_summary()["results"]
    _, recipe = load_recipe(
        HERE / "sine_maml.toml",
        [*sets, f'meta.algorithm="{algorithm}"', f"shots={shots}"],
    )
    resume = (run_dir / "config.toml").is_file()
    return algorithm, shots, train_regression(recipe, run_dir, resume=resume)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--out", default="runs/sine_table1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    load_recipe(HERE / "sine_maml.toml", args.set)  # a bad --set fails before any work
    t0 = time.perf_counter()
    cells = [(a, k) for k in (5, 10, 20) for a in ("maml", "metasgd")]
    results: dict[tuple[str, int], dict] = {}
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=ctx) as pool:
        futures = [pool.submit(_cell, args.out, a, k, args.set) for a, k in cells]
        for fut in futures:
            algorithm, shots, res = fut.result()
            results[(algorithm, shots)] = res
            print(f"  {algorithm} {shots}-shot: {res['mse_after_1_step']:.3f}", file=sys.stderr)
    rows = []
    beats = 0
    for k in (5, 10, 20):
        row: dict[str, object] = {"shots": k}
        for a, label in (("maml", "MAML"), ("metasgd", "Meta-SGD")):
            res = results[(a, k)]
            mean, ci = res["mse_after_1_step"], res["mse_after_1_step_ci95"]
            pub_mean, pub_ci = PUBLISHED[(a, k)]
            row[f"{label} (mtrl)"] = f"{mean:.2f} ± {ci:.2f}"
            row[f"{label} (paper)"] = f"{pub_mean:.2f} ± {pub_ci:.2f}"
            beats += mean <= pub_mean
        rows.append(row)
    cols = ["shots", "MAML (mtrl)", "MAML (paper)", "Meta-SGD (mtrl)", "Meta-SGD (paper)"]
    table = format_table(rows, cols)
    minutes = (time.perf_counter() - t0) / 60
    print(table)
    print(f"\n{beats}/6 cells at or below the published mean; {minutes:.1f} min wall time")
    out = Path(args.out)
    (out / "table1.md").write_text(table + "\n")
    doc = {
        "cells": {f"{a}_{k}shot": r for (a, k), r in results.items()},
        "published": {f"{a}_{k}shot": v for (a, k), v in PUBLISHED.items()},
        "at_or_below_published": beats,
        "minutes": minutes,
    }
    (out / "table1.json").write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
