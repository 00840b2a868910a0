"""A replay buffer that stores and samples per task: balanced, task-sorted batches.

Each task has its own ring of ``capacity`` transitions in one stacked tensor
``[tasks, capacity, ...]``. A batch of ``b`` holds ``b / tasks`` transitions of every
task, task 0 first, so per-task network layers run as one ``bmm``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor


class Batch(NamedTuple):
    obs: Tensor  # [B, obs]
    actions: Tensor  # [B, act]
    rewards: Tensor  # [B]
    next_obs: Tensor  # [B, obs]
    dones: Tensor  # [B] 1 where the episode terminated (no bootstrapping)
    task_ids: Tensor  # [B] long, task-sorted


def uniform_per_task(
    storage: tuple[Tensor, Tensor, Tensor, Tensor, Tensor],
    tasks: Tensor,
    sizes: Tensor,
    per: int,
    generator: torch.Generator | None,
) -> Batch:
    """``per`` uniform rows of each of ``tasks`` from per-task storage ``[task, row, ...]``
    (obs, actions, rewards, next_obs, dones) holding ``sizes[i]`` rows of ``tasks[i]``;
    task-sorted as ``tasks`` is."""
    u = torch.rand(len(tasks), per, generator=generator).to(tasks.device)
    idx = (u * sizes.unsqueeze(1)).long()
    rows = tasks.unsqueeze(1).expand(-1, per)

    def take(buf: Tensor) -> Tensor:
        return buf[rows, idx].reshape(len(tasks) * per, *buf.shape[2:])

    obs, actions, rewards, next_obs, dones = (take(b) for b in storage)
    return Batch(obs, actions, rewards, next_obs, dones, rows.reshape(-1))


class TaskReplayBuffer:
    """Per-task ring buffers on ``device``; :meth:`sample` is balanced across tasks."""

    def __init__(
        self, num_tasks: int, capacity: int, obs_dim: int, act_dim: int, device: str = "cpu"
    ) -> None:
        if num_tasks < 1 or capacity < 1:
            raise ValueError(f"num_tasks and capacity must be >= 1, got {num_tasks}, {capacity}")
        self.num_tasks, self.capacity = num_tasks, capacity
        self.device = torch.device(device)
        shape = (num_tasks, capacity)
        self.obs = torch.zeros(*shape, obs_dim, device=self.device)
        self.next_obs = torch.zeros(*shape, obs_dim, device=self.device)
        self.actions = torch.zeros(*shape, act_dim, device=self.device)
        self.rewards = torch.zeros(shape, device=self.device)
        self.dones = torch.zeros(shape, device=self.device)
        self.pos = np.zeros(num_tasks, dtype=np.int64)
        self.size = np.zeros(num_tasks, dtype=np.int64)

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        dones: np.ndarray,
        task_ids: np.ndarray,
    ) -> None:
        """Add one transition per row (rows may belong to any tasks)."""
        tids = np.asarray(task_ids, dtype=np.int64)
        if tids.min() < 0 or tids.max() >= self.num_tasks:
            raise ValueError(f"task ids must lie in [0, {self.num_tasks})")
        # rows of the same task get consecutive slots
        slots = np.empty_like(tids)
        for t in np.unique(tids):
            rows = np.flatnonzero(tids == t)
            slots[rows] = (self.pos[t] + np.arange(len(rows))) % self.capacity
            self.pos[t] = (self.pos[t] + len(rows)) % self.capacity
            self.size[t] = min(self.size[t] + len(rows), self.capacity)
        ti = torch.as_tensor(tids, device=self.device)
        si = torch.as_tensor(slots, device=self.device)

        def put(buf: Tensor, value: np.ndarray) -> None:
            buf[ti, si] = torch.as_tensor(np.asarray(value), dtype=buf.dtype, device=self.device)

        put(self.obs, obs)
        put(self.actions, actions)
        put(self.rewards, rewards)
        put(self.next_obs, next_obs)
        put(self.dones, dones)

    def ready(self, per_task: int, *, any_task: bool = False) -> bool:
        """Every task (or, with ``any_task``, at least one) holds ``per_task`` transitions."""
        enough = self.size >= per_task
        return bool(enough.any() if any_task else enough.all())

    def filled_tasks(self) -> np.ndarray:
        """Ids of the tasks that hold at least one transition."""
        return np.flatnonzero(self.size > 0)

    def reset(self, tasks: np.ndarray | None = None) -> None:
        """Forget the transitions of ``tasks`` (all when None): a continual-learning
        task switch. The stored tensors are kept and overwritten."""
        idx = np.arange(self.num_tasks) if tasks is None else np.asarray(tasks)
        self.pos[idx] = 0
        self.size[idx] = 0

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        *,
        filled_only: bool = False,
    ) -> Batch:
        """``batch_size / tasks`` uniform transitions of every task, task-sorted. With
        ``filled_only`` (tasks unlocked during a run) only the tasks holding data are
        sampled, ``batch_size // k`` each for ``k`` such tasks."""
        tasks = self.filled_tasks()
        if not filled_only:
            if batch_size % self.num_tasks:
                raise ValueError(
                    f"batch_size {batch_size} must be a multiple of the number of tasks "
                    f"({self.num_tasks}) for balanced per-task sampling"
                )
            if len(tasks) < self.num_tasks:
                empty = np.flatnonzero(self.size == 0).tolist()
                raise ValueError(f"tasks {empty} have no transitions yet")
        if not len(tasks):
            raise ValueError("the buffer holds no transitions yet")
        k = len(tasks)
        per = batch_size // k
        if per < 1:
            raise ValueError(f"batch_size {batch_size} is smaller than the {k} tasks to sample")
        task_idx = torch.as_tensor(tasks, device=self.device)
        sizes = torch.as_tensor(self.size[tasks], device=self.device)
        return uniform_per_task(
            (self.obs, self.actions, self.rewards, self.next_obs, self.dones),
            task_idx,
            sizes,
            per,
            generator,
        )

    def state(self) -> dict[str, object]:
        """Everything needed to restore the buffer (for resumable checkpoints): the
        rows written so far (up to the fullest task's size), not the empty capacity, so
        early checkpoints of a large buffer stay small."""
        n = int(self.size.max())

        def filled(t: Tensor) -> Tensor:  # a copy: saving a view would save its storage
            return t if n == self.capacity else t[:, :n].clone()

        return {
            "obs": filled(self.obs),
            "next_obs": filled(self.next_obs),
            "actions": filled(self.actions),
            "rewards": filled(self.rewards),
            "dones": filled(self.dones),
            "pos": self.pos.copy(),
            "size": self.size.copy(),
        }

    def load_state(self, state: dict[str, object]) -> None:
        for key in ("obs", "next_obs", "actions", "rewards", "dones"):
            rows: Tensor = state[key]  # type: ignore[assignment]
            getattr(self, key)[:, : rows.shape[1]].copy_(rows)
        self.pos = np.asarray(state["pos"]).copy()
        self.size = np.asarray(state["size"]).copy()
