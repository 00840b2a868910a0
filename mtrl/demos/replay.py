"""Demonstration transitions stored per task and mixed into RL batches (RLPD's symmetric
sampling), with the linear decay schedule the techniques share."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from mtrl.agents.replay import Batch, uniform_per_task


def demo_share(share: float, decay_steps: int, steps_since_start: int, final: float = 0.0) -> float:
    """The demonstrations' share of a batch (or the cloning weight): ``share``, decaying
    linearly to ``final`` over ``decay_steps`` env steps after learning starts, then held
    there (``decay_steps = 0``: fixed at ``share``); before learning starts, ``share``."""
    if decay_steps <= 0:
        return share
    left = min(1.0, max(0.0, 1.0 - steps_since_start / decay_steps))
    return final + (share - final) * left


_FIELDS = (
    ("obs", "obs"),
    ("actions", "action"),
    ("rewards", "reward"),
    ("next_obs", "next_obs"),
    ("dones", "terminated"),
)


class DemoReplay:
    """Demonstration transitions stored per task; :meth:`mix` puts them into a
    task-sorted, task-balanced RL batch in place of the first rows of each task."""

    def __init__(self, demos: dict[str, np.ndarray], num_tasks: int, device: str = "cpu") -> None:
        tids = np.asarray(demos["task_id"])
        self.size = np.bincount(tids, minlength=num_tasks)[:num_tasks]
        width = max(int(self.size.max()), 1)
        self.device = device

        def per_task(key: str) -> Tensor:
            values = np.asarray(demos[key], dtype=np.float32)
            out = np.zeros((num_tasks, width, *values.shape[1:]), dtype=np.float32)
            for t in range(num_tasks):
                rows = values[tids == t]
                out[t, : len(rows)] = rows
            return torch.as_tensor(out, device=device)

        self.obs, self.actions = per_task("obs"), per_task("action")
        self.rewards, self.next_obs = per_task("reward"), per_task("next_obs")
        self.dones = per_task("terminated")

    def tasks(self) -> Tensor:
        """The tasks that have demonstrations (ascending)."""
        return torch.as_tensor(np.flatnonzero(self.size > 0), device=self.device)

    def extend(self, task: int, rows: dict[str, np.ndarray]) -> None:
        """Append transitions (the dataset's keys: obs, action, reward, next_obs,
        terminated) to ``task``'s demonstrations, growing the storage when full."""
        n, start = len(rows["obs"]), int(self.size[task])
        width = self.obs.shape[1]
        if start + n > width:  # grow to twice what is needed: appends stay amortised O(1)
            extra = 2 * (start + n) - width
            for name in ("obs", "actions", "rewards", "next_obs", "dones"):
                old = getattr(self, name)
                pad = torch.zeros((old.shape[0], extra, *old.shape[2:]), device=self.device)
                setattr(self, name, torch.cat([old, pad], dim=1))
        for name, key in _FIELDS:
            values = torch.as_tensor(np.asarray(rows[key], dtype=np.float32), device=self.device)
            getattr(self, name)[task, start : start + n] = values
        self.size[task] = start + n

    def sample(self, tasks: Tensor, per: int, generator: torch.Generator | None) -> Batch:
        """``per`` uniform demonstrations of each of ``tasks`` (all must have some)."""
        sizes = torch.as_tensor(self.size, device=self.device)[tasks]
        storage = (self.obs, self.actions, self.rewards, self.next_obs, self.dones)
        return uniform_per_task(storage, tasks, sizes, per, generator)

    def mix(self, batch: Batch, share: float, generator: torch.Generator | None) -> Batch:
        """``batch`` with ``floor(share * rows per task)`` rows of each task that has
        demonstrations replaced by demonstrations of that task (order kept)."""
        tasks = torch.unique_consecutive(batch.task_ids)
        per = len(batch.task_ids) // len(tasks)
        m = math.floor(share * per)
        has = torch.as_tensor(self.size > 0, device=self.device)[tasks]
        if m == 0 or not bool(has.any()):
            return batch
        demo_tasks = tasks[has]
        demo = self.sample(demo_tasks, m, generator)
        blocks = torch.nonzero(has).squeeze(1)
        fields = []
        for mine, theirs in zip(batch, demo, strict=True):
            out = mine.clone().reshape(len(tasks), per, *mine.shape[1:])
            out[blocks, :m] = theirs.reshape(len(demo_tasks), m, *theirs.shape[1:]).to(mine.dtype)
            fields.append(out.reshape(mine.shape))
        return Batch(*fields)
