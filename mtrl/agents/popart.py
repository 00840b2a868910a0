"""PopArt for MT-SAC's critics: each task's Q-values learned on a normalised scale
(van Hasselt et al. 2016, "Learning values across many orders of magnitude"; Hessel et
al. 2019 for many tasks).

Every critic net ``i`` is followed by a per-task affine layer, ``n = w[t, i] * f +
b[t, i]`` (row ``t`` is task ``t``'s, as in every per-task parameter), and the value is
``q = sigma_t * n + mu_t``, with ``mu_t`` and ``sigma_t`` running statistics of task
``t``'s TD targets (exponential moving averages of the first and second moments, step
``beta``). The critics regress ``n`` on the normalised target ``(y - mu_t) / sigma_t``,
so every task's TD errors are on one scale whatever its rewards. When the statistics
move, ``w`` and ``b`` are rescaled so that every ``q`` is unchanged ("preserving outputs
precisely"): the statistics follow the targets without the values jumping. Unlike a
reward normaliser (``reward_norm``), rewards and TD targets stay in the task's units;
the actor's per-task losses are divided by ``sigma_t``, so each task pulls on shared
layers with the same weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mtrl.agents.task_stats import task_moments
from mtrl.config import bounded, check_fields


@dataclass(frozen=True)
class PopArtConfig:
    """``[sac.popart]``: the statistics' step size ``beta`` per update and the least
    ``sigma`` (a task whose targets are all equal would divide by zero)."""

    beta: float = bounded(3e-4, gt=0.0, le=1.0)
    min_std: float = bounded(1e-4, gt=0.0)

    def __post_init__(self) -> None:
        check_fields(self, "sac.popart")


class PopArt(nn.Module):
    """The per-task affine heads of ``count`` critic nets and the target statistics."""

    mean: Tensor
    second: Tensor

    def __init__(self, config: PopArtConfig, count: int, num_tasks: int) -> None:
        super().__init__()
        self.config, self.num_tasks = config, num_tasks
        self.weight = nn.Parameter(torch.ones(num_tasks, count))
        self.bias = nn.Parameter(torch.zeros(num_tasks, count))
        self.register_buffer("mean", torch.zeros(num_tasks))
        self.register_buffer("second", torch.ones(num_tasks))

    @property
    def std(self) -> Tensor:
        """Each task's sigma, ``sqrt(E[y^2] - E[y]^2)``, at least ``min_std``."""
        var = (self.second - self.mean**2).clamp_min(self.config.min_std**2)
        return var.sqrt()

    def normalised(self, i: int, raw: Tensor, task_ids: Tensor) -> Tensor:
        """Critic net ``i``'s normalised values from its raw outputs ``[batch]``."""
        return self.weight[task_ids, i] * raw + self.bias[task_ids, i]

    def values(self, normalised: Tensor, task_ids: Tensor) -> Tensor:
        return self.std[task_ids] * normalised + self.mean[task_ids]

    def targets(self, targets: Tensor, task_ids: Tensor) -> Tensor:
        """TD targets on the normalised scale."""
        return (targets - self.mean[task_ids]) / self.std[task_ids]

    @torch.no_grad()
    def update(self, targets: Tensor, task_ids: Tensor, *others: PopArt) -> None:
        """Move the statistics of the tasks in the batch towards its targets, and
        rescale this module's heads and ``others``' (the target critics') so that
        every value stays what it was."""
        beta = self.config.beta
        first, second, present = task_moments(targets, task_ids, self.num_tasks)
        old_mean, old_std = self.mean.clone(), self.std
        self.mean.copy_(torch.where(present, (1 - beta) * self.mean + beta * first, self.mean))
        self.second.copy_(
            torch.where(present, (1 - beta) * self.second + beta * second, self.second)
        )
        new_std = self.std
        for module in (self, *others):
            module.mean.copy_(self.mean)
            module.second.copy_(self.second)
            module.weight.mul_((old_std / new_std)[:, None])
            module.bias.mul_(old_std[:, None]).add_((old_mean - self.mean)[:, None])
            module.bias.div_(new_std[:, None])
