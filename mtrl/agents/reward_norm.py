"""Per-task reward normalisation: each task's rewards divided by the running standard
deviation of its discounted return.

Tasks of different families pay rewards on scales orders of magnitude apart (Pendulum
about -1000 per episode, Navigation2D about -10); a shared critic's loss, and with it
the shared layers, then serve the loudest task. Scaling each task's rewards by its own
return spread (as SB3's ``VecNormalize`` does for one task, here kept per task) puts
the tasks' TD errors on one scale. The statistics follow the raw reward stream of
training; MT-SAC stores raw rewards and scales each sampled batch with the current
statistics, MT-PPO scales rewards as it collects them.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from mtrl.agents.hooks import LoopComponent, Step
from mtrl.agents.replay import Batch

RewardNorm = Literal["none", "return_std"]


def merge_moments(
    count: float, mean: float, m2: float, values: np.ndarray
) -> tuple[float, float, float]:
    """Count, mean and sum of squared deviations after adding ``values`` (the parallel
    update of Chan et al.: exact for any split of the data)."""
    n = values.size
    if n == 0:
        return count, mean, m2
    batch_mean = float(values.mean())
    batch_m2 = float(((values - batch_mean) ** 2).sum())
    c, m, s = merge_moments_batched(
        np.array([count]),
        np.array([mean]),
        np.array([m2]),
        np.array([float(n)]),
        np.array([batch_mean]),
        np.array([batch_m2]),
    )
    return float(c[0]), float(m[0]), float(s[0])


def merge_moments_batched(
    count: np.ndarray,
    mean: np.ndarray,
    m2: np.ndarray,
    n: np.ndarray,
    batch_mean: np.ndarray,
    batch_m2: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`merge_moments` for many statistics at once, each adding a batch given by
    its size ``n`` (> 0), mean and sum of squared deviations."""
    total = count + n
    delta = batch_mean - mean
    return total, mean + delta * n / total, m2 + batch_m2 + delta**2 * count * n / total


class RewardNormalizer:
    """Running per-task spread of discounted returns, and rewards scaled by it.

    Starts from variance 1 with a tiny weight (``1e-4`` samples, as ``VecNormalize``),
    so the first rewards are barely scaled; scaled rewards are clipped to ``±clip``.
    """

    def __init__(
        self, num_tasks: int, num_envs: int, gamma: float, clip: float = 10.0, eps: float = 1e-8
    ) -> None:
        self.gamma, self.clip, self.eps = gamma, clip, eps
        self.count = np.full(num_tasks, 1e-4)
        self.mean = np.zeros(num_tasks)
        self.m2 = np.full(num_tasks, 1e-4)  # variance 1 at weight 1e-4
        self.returns = np.zeros(num_envs)  # each sub-env's discounted return so far

    def observe(self, rewards: np.ndarray, dones: np.ndarray, task_ids: np.ndarray) -> None:
        """Account one vector-env step: sub-env ``i`` ran ``task_ids[i]``."""
        self.returns = self.returns * self.gamma + np.asarray(rewards, dtype=np.float64)
        tids = np.asarray(task_ids)
        size = len(self.count)
        n = np.bincount(tids, minlength=size).astype(np.float64)
        seen = n > 0
        batch_mean = np.bincount(tids, weights=self.returns, minlength=size)[seen] / n[seen]
        means = np.zeros(size)
        means[seen] = batch_mean
        batch_m2 = np.bincount(tids, weights=(self.returns - means[tids]) ** 2, minlength=size)
        self.count[seen], self.mean[seen], self.m2[seen] = merge_moments_batched(
            self.count[seen], self.mean[seen], self.m2[seen], n[seen], batch_mean, batch_m2[seen]
        )
        self.returns[np.asarray(dones, dtype=bool)] = 0.0

    def scales(self) -> np.ndarray:
        """Per task, the factor its rewards are multiplied by: 1 / std of its return."""
        return 1.0 / np.sqrt(self.m2 / self.count + self.eps)

    def normalize(self, rewards: np.ndarray, task_ids: np.ndarray) -> np.ndarray:
        scaled = np.asarray(rewards) * self.scales()[np.asarray(task_ids)]
        return np.clip(scaled, -self.clip, self.clip)

    def normalize_tensor(self, rewards: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        scales = torch.as_tensor(self.scales(), dtype=rewards.dtype, device=rewards.device)
        return torch.clamp(rewards * scales[task_ids], -self.clip, self.clip)

    def state_dict(self) -> dict[str, Any]:
        return {
            "count": self.count.copy(),
            "mean": self.mean.copy(),
            "m2": self.m2.copy(),
            "returns": self.returns.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("count", "mean", "m2", "returns"):
            setattr(self, key, np.array(state[key], dtype=np.float64))


def make_normalizer(
    kind: RewardNorm, num_tasks: int, num_envs: int, gamma: float
) -> RewardNormalizer | None:
    """The normaliser a recipe's ``reward_norm`` asks for (None for ``"none"``)."""
    return RewardNormalizer(num_tasks, num_envs, gamma) if kind == "return_std" else None


class ReplayRewardScaling(LoopComponent):
    """Off-policy use of a normaliser: raw rewards are stored and observed as they come;
    each batch's rewards are scaled by the statistics as they are at update time."""

    def __init__(self, norm: RewardNormalizer) -> None:
        self.norm = norm

    def observe(self, step: Step, info: dict[str, Any]) -> None:
        self.norm.observe(step.reward, step.done, step.task_ids)

    def mix(self, batch: Batch, steps: int, generator: torch.Generator) -> Batch:
        return batch._replace(rewards=self.norm.normalize_tensor(batch.rewards, batch.task_ids))

    def checkpoint(self) -> dict[str, Any]:
        return {"reward_norm": self.norm.state_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        self.norm.load_state_dict(state["reward_norm"])
