"""Per-task reductions of a batch: values grouped by the task id of their row, for
per-task losses (MT-SAC, MT-PPO) and per-task target statistics (PopArt)."""

from __future__ import annotations

import torch
from torch import Tensor


def per_task_mean(values: Tensor, task_ids: Tensor, num_tasks: int) -> Tensor:
    """``[tasks]`` means of ``values [batch]`` grouped by task id (0 for an absent task)."""
    sums = torch.zeros(num_tasks, dtype=values.dtype, device=values.device)
    sums = sums.index_add(0, task_ids, values)
    counts = torch.bincount(task_ids, minlength=num_tasks).clamp_min(1).to(values.dtype)
    return sums / counts


def task_moments(values: Tensor, task_ids: Tensor, num_tasks: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-task mean of ``values`` and of their squares, and which tasks the batch has."""
    present = torch.bincount(task_ids, minlength=num_tasks) > 0
    first = per_task_mean(values, task_ids, num_tasks)
    return first, per_task_mean(values**2, task_ids, num_tasks), present
