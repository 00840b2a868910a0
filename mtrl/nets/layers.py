"""Per-task layers: one stacked parameter ``[num_tasks, ...]`` for all tasks.

Inputs come with integer task ids ``[batch]``. A task-sorted, balanced batch (``n``
rows of task 0, then ``n`` of task 1, ...) runs as one ``bmm``; any other batch gathers
each row's task weights (one ``einsum``). No Python loop over tasks either way.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _is_sorted_balanced(task_ids: Tensor, num_tasks: int) -> bool:
    b = task_ids.shape[0]
    if b % num_tasks:
        return False
    expected = torch.arange(num_tasks, device=task_ids.device).repeat_interleave(b // num_tasks)
    return bool(torch.equal(task_ids, expected))


def check_task_ids(task_ids: Tensor, batch: int, num_tasks: int) -> None:
    """Clear errors for task ids of the wrong shape, dtype or range."""
    if task_ids.dim() != 1 or task_ids.shape[0] != batch:
        raise ValueError(f"task_ids must be [batch={batch}], got {tuple(task_ids.shape)}")
    if task_ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"task_ids must be an integer tensor, got {task_ids.dtype}")
    if batch and (int(task_ids.min()) < 0 or int(task_ids.max()) >= num_tasks):
        raise ValueError(
            f"task ids must lie in [0, {num_tasks}), got [{int(task_ids.min())}, "
            f"{int(task_ids.max())}]"
        )


class TaskLinear(nn.Module):
    """A separate ``Linear(in, out)`` per task (``weight [T, in, out]``, ``bias [T, out]``)."""

    def __init__(self, num_tasks: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.weight = nn.Parameter(torch.empty(num_tasks, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(num_tasks, out_features))
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default initialisation
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor, task_ids: Tensor) -> Tensor:
        """``x [batch, in]`` -> ``[batch, out]`` with each row's own task weights."""
        if _is_sorted_balanced(task_ids, self.num_tasks):
            xs = x.reshape(self.num_tasks, -1, x.shape[-1])
            out = torch.baddbmm(self.bias.unsqueeze(1), xs, self.weight)
            return out.reshape(x.shape[0], -1)
        w = self.weight.index_select(0, task_ids)
        return torch.einsum("bi,bio->bo", x, w) + self.bias.index_select(0, task_ids)

    def forward_stacked(self, x: Tensor) -> Tensor:
        """``x [T, batch, in]``, slice ``t`` through task ``t``'s layer: ``[T, batch, out]``."""
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)


def fix_outputs(layer: nn.Linear | TaskLinear, start: int, value: float) -> None:
    """Outputs ``start:`` of ``layer`` := ``value`` for every input and task (their
    weights zeroed, their bias set); the other outputs are untouched. Training moves
    them from there."""
    with torch.no_grad():
        if isinstance(layer, TaskLinear):  # weight [T, in, out], bias [T, out]
            layer.weight[:, :, start:] = 0.0
            layer.bias[:, start:] = value
        else:  # weight [out, in]
            layer.weight[start:] = 0.0
            layer.bias[start:] = value
