"""Continual-learning methods as pieces MT-SAC's update adds (an UpdateExtension).

At each task switch the loop calls :meth:`ContinualMethod.end_task`, which takes what
the method keeps of the finished task (parameters, importances, stored states); in
every later update :meth:`actor_penalty` / :meth:`critic_penalty` add its term:

* ``finetune``: nothing (the lower bound on forgetting);
* ``l2``: ``lambda * ||theta - theta*||^2`` to the parameters after the last task;
* ``ewc``: the same weighted by the diagonal Fisher of the policy, summed over tasks;
* ``mas``: weighted by the mean absolute gradient of the output's squared norm;
* ``clonex``: behaviour-cloning rehearsal: stored states of earlier tasks and the
  policy's outputs on them at the end of each task, distilled with a Gaussian KL;
* ``perfect_memory``: no penalty; the loop keeps every task's replay data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from mtrl.agents.replay import TaskReplayBuffer
from mtrl.agents.sac import MTSAC, UpdateExtension
from mtrl.config import bounded, check_fields
from mtrl.curriculum.penalties import (
    absolute_importance,
    anchored_penalty,
    gaussian_kl,
    gaussian_log_prob,
    squared_importance,
)

MethodName = Literal["finetune", "l2", "ewc", "mas", "clonex", "perfect_memory"]
# Continual World's tuned regularisation strengths
DEFAULT_COEF = {"l2": 1e5, "ewc": 1e4, "mas": 1e4, "clonex": 1.0}


@dataclass(frozen=True)
class ContinualConfig:
    """The ``[continual]`` table: the method and what happens at a task switch."""

    method: MethodName = "finetune"
    reg_coef: float | None = None  # default: Continual World's (l2 1e5, ewc/mas 1e4, clonex 1)
    regularize_critic: bool = False
    reset_buffer: bool = True  # perfect_memory keeps every task's data regardless
    reset_optimizer: bool = True
    explore_steps: int = bounded(10_000, ge=0)  # random actions at the start of each task
    importance_samples: int = bounded(256, ge=1)  # states for EWC's Fisher / MAS
    memory_per_task: int = bounded(10_000, ge=1)  # clonex: stored states per task
    memory_batch: int = bounded(128, ge=1)  # clonex: stored states per update

    def __post_init__(self) -> None:
        check_fields(self, "continual")
        if self.reg_coef is not None and self.reg_coef < 0:
            raise ValueError(f"continual.reg_coef = {self.reg_coef} must be >= 0")
        if self.method in ("finetune", "perfect_memory") and self.reg_coef:
            raise ValueError(f"continual.method = {self.method!r} takes no reg_coef")

    @property
    def coef(self) -> float:
        return self.reg_coef if self.reg_coef is not None else DEFAULT_COEF.get(self.method, 0.0)

    @property
    def keeps_buffer(self) -> bool:
        return self.method == "perfect_memory" or not self.reset_buffer


def _params(module: nn.Module) -> list[Tensor]:
    return [p for p in module.parameters() if p.requires_grad]


class ContinualMethod(UpdateExtension):
    """One method's state across a task sequence (anchors, importances, memory)."""

    def __init__(self, config: ContinualConfig, agent: MTSAC, seed: int) -> None:
        self.config = config
        self.agent = agent
        self.gen = torch.Generator().manual_seed(seed + 7919)
        self.anchors: dict[str, list[Tensor]] = {}
        self.weights: dict[str, list[Tensor]] = {}
        self.memory_obs: list[Tensor] = []
        self.memory_tasks: list[Tensor] = []
        self.memory_mean: list[Tensor] = []
        self.memory_log_std: list[Tensor] = []

    def _modules(self) -> dict[str, nn.Module]:
        mods: dict[str, nn.Module] = {"actor": self.agent.actor}
        if self.config.regularize_critic:
            mods["critic"] = self.agent.critic
        return mods

    # -- at a task switch -------------------------------------------------------------
    def end_task(self, task: int, buffer: TaskReplayBuffer) -> None:
        """Keep what the method needs of ``task`` (its replay data is still there)."""
        method = self.config.method
        if method in ("finetune", "perfect_memory"):
            return
        states = self._states(task, buffer, self.config.importance_samples)
        if method == "clonex":
            self._remember(task, buffer)
            return
        for name, module in self._modules().items():
            params = _params(module)
            if method == "ewc":
                new = self._fisher(name, params, states, task)
            elif method == "mas":
                new = self._mas(name, params, states, task)
            else:
                new = [torch.ones_like(p) for p in params]
            old = self.weights.get(name)
            if method == "l2" or old is None:
                self.weights[name] = new
            else:  # EWC and MAS sum the importances of every task so far
                self.weights[name] = [a + b for a, b in zip(old, new, strict=True)]
            self.anchors[name] = [p.detach().clone() for p in params]

    def _states(self, task: int, buffer: TaskReplayBuffer, n: int) -> Tensor:
        size = int(buffer.size[task])
        if size == 0:
            raise ValueError(f"task {task} has no replay data to consolidate from")
        idx = torch.randint(size, (min(n, size),), generator=self.gen).to(buffer.device)
        return buffer.obs[task, idx]

    def _outputs(self, name: str, obs: Tensor, tid: Tensor) -> tuple[Tensor, Tensor]:
        if name == "actor":
            return self.agent.actor(obs, tid)
        act = self.agent.actor.act(obs, tid, deterministic=True).detach()
        q1, q2 = self.agent.critic(obs, act, tid)
        return q1, q2

    def _fisher(self, name: str, params: list[Tensor], states: Tensor, task: int) -> list[Tensor]:
        tid = torch.full((1,), task, dtype=torch.long, device=states.device)

        def log_likelihood(i: int) -> Tensor:
            obs = states[i : i + 1]
            if name == "actor":
                mean, log_std = self.agent.actor(obs, tid)
                noise = torch.randn(mean.shape, generator=self.gen).to(mean.device)
                sample = (mean + log_std.exp() * noise).detach()
                return gaussian_log_prob(sample, mean, log_std).sum()
            # a critic as a unit-variance Gaussian around its output: the Fisher is the
            # squared gradient of the output (the twin nets share no parameters)
            q1, q2 = self._outputs(name, obs, tid)
            return (q1 + q2).sum()

        return squared_importance(log_likelihood, params, len(states))

    def _mas(self, name: str, params: list[Tensor], states: Tensor, task: int) -> list[Tensor]:
        tid = torch.full((1,), task, dtype=torch.long, device=states.device)

        def output_norm(i: int) -> Tensor:
            a, b = self._outputs(name, states[i : i + 1], tid)
            return (a**2).sum() + (b**2).sum()

        return absolute_importance(output_norm, params, len(states))

    @torch.no_grad()
    def _remember(self, task: int, buffer: TaskReplayBuffer) -> None:
        obs = self._states(task, buffer, self.config.memory_per_task)
        tid = torch.full((len(obs),), task, dtype=torch.long, device=obs.device)
        mean, log_std = self.agent.actor(obs, tid)
        self.memory_obs.append(obs.clone())
        self.memory_tasks.append(tid)
        self.memory_mean.append(mean.clone())
        self.memory_log_std.append(log_std.clone())

    # -- in every update ----------------------------------------------------------------
    def _penalty(self, name: str) -> Tensor | None:
        if name not in self.anchors:
            return None
        module = self.agent.actor if name == "actor" else self.agent.critic
        return self.config.coef * anchored_penalty(
            _params(module), self.anchors[name], self.weights[name]
        )

    def actor_penalty(self) -> Tensor | None:
        if self.config.method == "clonex":
            return self._distillation()
        return self._penalty("actor")

    def critic_penalty(self) -> Tensor | None:
        return self._penalty("critic") if self.config.regularize_critic else None

    def _distillation(self) -> Tensor | None:
        if not self.memory_obs:
            return None
        obs = torch.cat(self.memory_obs)
        idx = torch.randint(len(obs), (self.config.memory_batch,), generator=self.gen)
        idx = idx.to(obs.device)
        tid = torch.cat(self.memory_tasks)[idx]
        mean, log_std = self.agent.actor(obs[idx], tid)
        kl = gaussian_kl(
            torch.cat(self.memory_mean)[idx], torch.cat(self.memory_log_std)[idx], mean, log_std
        )
        return self.config.coef * kl.mean()

    # -- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.gen.get_state(),
            "anchors": self.anchors,
            "weights": self.weights,
            "memory": (self.memory_obs, self.memory_tasks, self.memory_mean, self.memory_log_std),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["generator"])
        self.anchors = state["anchors"]
        self.weights = state["weights"]
        obs, tasks, mean, log_std = state["memory"]
        self.memory_obs, self.memory_tasks = list(obs), list(tasks)
        self.memory_mean, self.memory_log_std = list(mean), list(log_std)
