"""Continual World's metrics (Wołczyk et al. 2021) from a task x time success matrix.

``success[k, i]`` is task ``i``'s evaluation success rate at ``steps[k]`` (env steps
since the start of the sequence); task ``i`` trains during
``(i * steps_per_task, (i + 1) * steps_per_task]``.

* average performance: mean success over all tasks at the end of the sequence;
* forgetting of task ``i``: its success at the end of its own training minus at the
  end of the sequence (averaged over all tasks; the last task's is 0 by definition);
* forward transfer of task ``i``: ``(AUC_i - AUC_ref_i) / (1 - AUC_ref_i)``, where
  ``AUC`` is the normalised area under task ``i``'s success curve while it trains
  (the mean of its evaluations in that interval) and ``AUC_ref`` the same for a
  reference run that trains task ``i`` alone from scratch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check(success: np.ndarray, steps: np.ndarray, steps_per_task: int) -> tuple[int, int]:
    if success.ndim != 2 or steps.shape != (success.shape[0],):
        raise ValueError(
            f"success must be [evals, tasks] with one step per row, got {success.shape} "
            f"and {steps.shape}"
        )
    if steps_per_task < 1:
        raise ValueError(f"steps_per_task must be >= 1, got {steps_per_task}")
    if np.any(np.diff(steps) <= 0):
        raise ValueError("evaluation steps must increase")
    return success.shape[0], success.shape[1]


def end_of_task_rows(steps: np.ndarray, steps_per_task: int, num_tasks: int) -> np.ndarray:
    """Row index of the last evaluation at or before the end of each task's training."""
    rows = np.searchsorted(steps, np.arange(1, num_tasks + 1) * steps_per_task, side="right") - 1
    if np.any(rows < 0):
        raise ValueError("no evaluation before the end of the first task")
    return rows


def average_performance(success: np.ndarray) -> float:
    """Mean success over tasks at the last evaluation."""
    return float(np.mean(np.asarray(success, dtype=np.float64)[-1]))


def forgetting(
    success: np.ndarray, steps: np.ndarray, steps_per_task: int
) -> tuple[float, np.ndarray]:
    """Mean forgetting and per-task forgetting (end of own training minus final)."""
    success = np.asarray(success, dtype=np.float64)
    steps = np.asarray(steps)
    _, n = _check(success, steps, steps_per_task)
    rows = end_of_task_rows(steps, steps_per_task, n)
    per_task = success[rows, np.arange(n)] - success[-1]
    return float(per_task.mean()), per_task


def task_auc(success: np.ndarray, steps: np.ndarray, steps_per_task: int) -> np.ndarray:
    """Per task: the mean of its evaluations during its own training interval."""
    success = np.asarray(success, dtype=np.float64)
    steps = np.asarray(steps)
    _, n = _check(success, steps, steps_per_task)
    out = np.full(n, np.nan)
    for i in range(n):
        inside = (steps > i * steps_per_task) & (steps <= (i + 1) * steps_per_task)
        if inside.any():
            out[i] = success[inside, i].mean()
    return out


def forward_transfer(auc: np.ndarray, reference_auc: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean and per-task ``(AUC - AUC_ref) / (1 - AUC_ref)`` (NaN where AUC_ref = 1)."""
    auc = np.asarray(auc, dtype=np.float64)
    ref = np.asarray(reference_auc, dtype=np.float64)
    if auc.shape != ref.shape:
        raise ValueError(f"AUC {auc.shape} and reference {ref.shape} differ in shape")
    with np.errstate(divide="ignore", invalid="ignore"):
        per_task = np.where(ref < 1.0, (auc - ref) / (1.0 - ref), np.nan)
    finite = per_task[np.isfinite(per_task)]
    return (float(finite.mean()) if finite.size else float("nan")), per_task


def continual_metrics(
    success: np.ndarray,
    steps: Sequence[int] | np.ndarray,
    steps_per_task: int,
    reference_auc: Sequence[float] | np.ndarray | None = None,
) -> dict[str, object]:
    """All three metrics of one run (forward transfer only with reference AUCs)."""
    success = np.asarray(success, dtype=np.float64)
    steps_arr = np.asarray(steps)
    f_mean, f_tasks = forgetting(success, steps_arr, steps_per_task)
    auc = task_auc(success, steps_arr, steps_per_task)
    out: dict[str, object] = {
        "average_performance": average_performance(success),
        "forgetting": f_mean,
        "forgetting_per_task": f_tasks.tolist(),
        "auc_per_task": auc.tolist(),
    }
    if reference_auc is not None:
        ft, ft_tasks = forward_transfer(auc, np.asarray(reference_auc))
        out["forward_transfer"] = ft
        out["forward_transfer_per_task"] = ft_tasks.tolist()
    return out
