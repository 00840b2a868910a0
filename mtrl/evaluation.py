"""Per-task evaluation and aggregate statistics across tasks and seeds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mtrl.envs.rollout import rollout
from mtrl.envs.vector import MultiTaskVecEnv
from mtrl.stats import bootstrap_ci, iqm, mean_ci95
from mtrl.tables import format_table

VecPolicy = Callable[[Any], np.ndarray]


def evaluate(
    env: MultiTaskVecEnv, policy: VecPolicy, episodes_per_task: int, seed: int
) -> list[dict[str, Any]]:
    """Per task: episodes, mean return, length and success rate (Meta-World's protocol:
    success if the task was solved at any step of the episode)."""
    return rollout(env, policy, episodes_per_task, seed=seed)


def aggregate(values: Sequence[float], seed: int = 0) -> dict[str, float]:
    """Mean (with 95% CI), IQM and percentile-bootstrap 95% CIs of both."""
    arr = np.asarray([v for v in values if not np.isnan(v)], dtype=np.float64)
    if arr.size == 0:
        return {"n": 0}
    mean, ci = mean_ci95(arr)
    lo, hi = bootstrap_ci(arr, "mean", seed=seed)
    ilo, ihi = bootstrap_ci(arr, "iqm", seed=seed)
    return {
        "n": int(arr.size),
        "mean": mean,
        "mean_ci95": ci,
        "mean_boot_low": lo,
        "mean_boot_high": hi,
        "iqm": iqm(arr),
        "iqm_boot_low": ilo,
        "iqm_boot_high": ihi,
    }


def final_results(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A run's results from its last evaluation: the rows, their aggregates and means."""
    agg = summarize(rows)
    return {
        "per_task": list(rows),
        "aggregate": agg,
        "mean_return": agg["return"].get("mean"),
        "mean_success": agg["success"].get("mean"),
    }


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Aggregates of per-task return and success rate."""
    return {
        "return": aggregate([float(r["return"]) for r in rows]),
        "success": aggregate([float(r["success"]) for r in rows]),
    }


def eval_metrics(rows: Sequence[dict[str, Any]], step: int) -> dict[str, Any]:
    """The metrics row of an evaluation at env step ``step``: mean return and success
    over tasks, and each task's (``success/ID``, ``return/ID``)."""
    agg = summarize(rows)
    out: dict[str, Any] = {
        "step": step,
        "eval_return": agg["return"].get("mean", float("nan")),
        "eval_success": agg["success"].get("mean", float("nan")),
    }
    for r in rows:
        out[f"success/{r['task_id']}"] = r["success"]
        out[f"return/{r['task_id']}"] = r["return"]
    return out


def results_table(rows: Sequence[dict[str, Any]]) -> str:
    """The per-task table followed by the aggregate line."""
    table = format_table(list(rows), ["task_id", "task", "episodes", "return", "length", "success"])
    agg = summarize(rows)
    lines = [table, ""]
    for metric in ("return", "success"):
        a = agg[metric]
        if a.get("n"):
            lines.append(
                f"{metric}: mean {a['mean']:.3f} ± {a['mean_ci95']:.3f} (95% CI), "
                f"IQM {a['iqm']:.3f} [{a['iqm_boot_low']:.3f}, {a['iqm_boot_high']:.3f}] "
                f"over {a['n']} tasks"
            )
    return "\n".join(lines)
