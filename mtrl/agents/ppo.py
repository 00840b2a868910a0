"""Multi-task PPO as an update rule: the task-conditioned actor-critic, rollouts with
GAE across episode boundaries (time-limit truncation bootstraps from the final
observation), and clipped-surrogate epochs over task-balanced, task-sorted
minibatches, so per-task layers run as one ``bmm`` and per-task losses feed the
optional gradient balancing. Box actions use a Gaussian policy (clipped to the bounds
in the env), Discrete actions a categorical one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Normal

from mtrl.agents.balancing import balanced_step
from mtrl.agents.task_stats import per_task_mean
from mtrl.config import bounded, check_fields
from mtrl.errors import ConfigError, TrainingDivergedError
from mtrl.nets import MultiTaskNet, NetConfig


@dataclass(frozen=True)
class PPOConfig:
    n_steps: int = bounded(256, ge=1)  # per sub-env per rollout
    epochs: int = bounded(10, ge=1)
    minibatches: int = bounded(4, ge=1)
    lr: float = bounded(1e-3, gt=0.0)
    gamma: float = bounded(0.99, gt=0.0, le=1.0)
    gae_lambda: float = bounded(0.95, ge=0.0, le=1.0)
    clip: float = bounded(0.2, gt=0.0, lt=1.0)
    value_coef: float = bounded(0.5, ge=0.0)
    entropy_coef: float = bounded(0.0, ge=0.0)
    max_grad_norm: float = bounded(0.5, gt=0.0)
    log_std_init: float = -0.5
    balancing: Literal["none", "pcgrad", "cagrad"] = "none"
    cagrad_c: float = bounded(0.5, ge=0.0)
    actor: NetConfig = field(default_factory=lambda: NetConfig(hidden=[64, 64], activation="tanh"))
    critic: NetConfig = field(default_factory=lambda: NetConfig(hidden=[64, 64], activation="tanh"))

    def __post_init__(self) -> None:
        check_fields(self)


class ActorCritic(nn.Module):
    """Task-conditioned policy and value networks for Box or Discrete actions."""

    def __init__(self, cfg: PPOConfig, obs_dim: int, space: gym.Space[Any], num_tasks: int) -> None:
        super().__init__()
        self.low: np.ndarray | None = None
        self.high: np.ndarray | None = None
        if isinstance(space, gym.spaces.Discrete):
            self.discrete, out = True, int(space.n)
        elif isinstance(space, gym.spaces.Box):
            self.discrete, out = False, int(np.prod(space.shape))
            self.low, self.high = space.low, space.high
        else:
            raise ConfigError(f"mtppo supports Box and Discrete actions, got {space}")
        self.pi = MultiTaskNet(cfg.actor, obs_dim, out, num_tasks)
        self.v = MultiTaskNet(cfg.critic, obs_dim, 1, num_tasks)
        self.log_std = nn.Parameter(torch.full((num_tasks, out), cfg.log_std_init))

    def dist(self, obs: Tensor, tid: Tensor) -> Distribution:
        out = self.pi(obs, tid)
        if self.discrete:
            return Categorical(logits=out)
        return Normal(out, self.log_std[tid].exp())

    def log_prob(self, d: Distribution, act: Tensor) -> Tensor:
        lp = d.log_prob(act)
        return lp if self.discrete else lp.sum(-1)

    def entropy(self, d: Distribution) -> Tensor:
        ent = d.entropy()
        return ent if self.discrete else ent.sum(-1)

    def env_actions(self, actions: Tensor) -> np.ndarray:
        """Actions as the env takes them: Box actions clipped to the bounds."""
        act = actions.cpu().numpy()
        return act if self.low is None else np.clip(act, self.low, self.high)

    def value(self, obs: Tensor, tid: Tensor) -> Tensor:
        return self.v(obs, tid).squeeze(-1)


def _obs(obs: dict[str, np.ndarray], device: str) -> tuple[Tensor, Tensor]:
    o = torch.as_tensor(np.asarray(obs["observation"], dtype=np.float32), device=device)
    return o.reshape(o.shape[0], -1), torch.as_tensor(np.asarray(obs["task_id"]), device=device)


def obs_tensors(obs: dict[str, np.ndarray], device: str) -> tuple[Tensor, Tensor]:
    """A multi-task env's Dict observation as (flat observations, task ids)."""
    o = torch.as_tensor(np.asarray(obs["observation"], dtype=np.float32), device=device)
    return o.reshape(o.shape[0], -1), torch.as_tensor(np.asarray(obs["task_id"]), device=device)


class Rollout(NamedTuple):
    """A rollout flattened over steps and sub-envs, with its advantages and returns."""

    obs: Tensor
    task_ids: Tensor
    actions: Tensor
    log_probs: Tensor
    advantages: Tensor
    returns: Tensor


def shuffled_minibatches(task_ids: Tensor, minibatches: int, gen: torch.Generator) -> list[Tensor]:
    """Random index sets, each sorted by task (a curriculum's rollouts hold tasks in
    any proportion, and some not at all)."""
    perm = torch.randperm(len(task_ids), generator=gen)
    size = len(perm) // minibatches
    if size < 1:
        raise ConfigError("too few samples for the minibatches; raise ppo.n_steps")
    parts = [perm[i * size : (i + 1) * size] for i in range(minibatches)]
    return [p[torch.argsort(task_ids[p], stable=True)] for p in parts]


def balanced_minibatches(
    task_ids: Tensor, num_tasks: int, minibatches: int, gen: torch.Generator
) -> list[Tensor]:
    """Index sets with the same number of samples of every task, task-sorted."""
    per_task = [torch.nonzero(task_ids == t).flatten() for t in range(num_tasks)]
    n = min(len(p) for p in per_task)
    size = n // minibatches
    if size < 1:
        raise ConfigError("too few samples per task for the minibatches; raise ppo.n_steps")
    shuffled = [p[torch.randperm(len(p), generator=gen)[:n]] for p in per_task]
    return [torch.cat([s[i * size : (i + 1) * size] for s in shuffled]) for i in range(minibatches)]


def ppo_update(
    ac: ActorCritic,
    opt: torch.optim.Optimizer,
    rollout: Rollout,
    cfg: PPOConfig,
    num_tasks: int,
    gen: torch.Generator,
    *,
    balanced: bool,
    diverged: Callable[[], str],
) -> list[float]:
    """``cfg.epochs`` of clipped-surrogate steps over minibatches (``balanced``: equal
    samples of every task; else shuffled, as a curriculum's rollouts hold tasks in any
    proportion); per-task losses combined by ``cfg.balancing``. Returns each step's
    mean task loss; a non-finite one raises with ``diverged()``'s advice."""
    present = int(torch.unique(rollout.task_ids).numel())
    losses = []
    for _ in range(cfg.epochs):
        batches = (
            balanced_minibatches(rollout.task_ids, num_tasks, cfg.minibatches, gen)
            if balanced
            else shuffled_minibatches(rollout.task_ids, cfg.minibatches, gen)
        )
        for idx in batches:
            task_losses = _task_losses(ac, rollout, idx, cfg, num_tasks)
            if present < num_tasks:  # mean over the tasks the rollout holds
                task_losses = task_losses * (num_tasks / present)
            reg = ac.pi.regularization() + ac.v.regularization()
            if not torch.isfinite(task_losses).all():
                raise TrainingDivergedError(diverged())
            params = list(ac.parameters())
            c = cfg
            balanced_step(opt, params, task_losses, reg, c.balancing, c.cagrad_c, c.max_grad_norm)
            losses.append(float(task_losses.mean().detach()))
    return losses


def _task_losses(
    ac: ActorCritic, r: Rollout, idx: Tensor, cfg: PPOConfig, num_tasks: int
) -> Tensor:
    """Per task: the clipped surrogate, value and entropy loss of minibatch ``idx``."""
    tid = r.task_ids[idx]
    d = ac.dist(r.obs[idx], tid)
    ratio = torch.exp(ac.log_prob(d, r.actions[idx]) - r.log_probs[idx])
    a_n = r.advantages[idx]
    a_n = (a_n - a_n.mean()) / (a_n.std() + 1e-8)
    surr = torch.minimum(ratio * a_n, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * a_n)
    v_loss = (ac.value(r.obs[idx], tid) - r.returns[idx]) ** 2
    per_sample = -surr + cfg.value_coef * v_loss - cfg.entropy_coef * ac.entropy(d)
    return per_task_mean(per_sample, tid, num_tasks)
