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
* ``perfect_memory``: no penalty; the loop keeps every task's replay data;
* ``packnet``: disjoint weight subsets per task by iterative pruning
  (:mod:`mtrl.curriculum.packnet`), each task acting with its own and earlier ones;
* ``agem``: stored transitions of earlier tasks; a gradient that would raise their
  loss is projected (A-GEM), for the actor and the critics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from mtrl.agents.replay import Batch, TaskReplayBuffer
from mtrl.agents.sac import MTSAC, Actor, UpdateExtension
from mtrl.config import bounded, check_fields
from mtrl.curriculum.packnet import PackNet, keep_share
from mtrl.curriculum.penalties import (
    absolute_importance,
    agem_project,
    anchored_penalty,
    gaussian_kl,
    gaussian_log_prob,
    squared_importance,
)

MethodName = Literal["finetune", "l2", "ewc", "mas", "clonex", "perfect_memory", "packnet", "agem"]
# Continual World's tuned regularisation strengths
DEFAULT_COEF = {"l2": 1e5, "ewc": 1e4, "mas": 1e4, "clonex": 1.0}
NO_COEF = ("finetune", "perfect_memory", "packnet", "agem")


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
    memory_per_task: int = bounded(10_000, ge=1)  # clonex/agem: stored samples per task
    memory_batch: int = bounded(128, ge=1)  # clonex/agem: stored samples per update
    packnet_retrain: float = bounded(0.1, gt=0.0, lt=1.0)  # share of a task after pruning

    def __post_init__(self) -> None:
        check_fields(self, "continual")
        if self.reg_coef is not None and self.reg_coef < 0:
            raise ValueError(f"continual.reg_coef = {self.reg_coef} must be >= 0")
        if self.method in NO_COEF and self.reg_coef:
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
        self.transitions: list[Batch] = []  # agem's episodic memory, one entry per task
        self._memory: Batch | None = None  # the transitions concatenated (a cache)
        self.packnets: dict[str, PackNet] = {}
        if config.method == "packnet":
            self.packnets["actor"] = PackNet(agent.actor.net, agent.config.actor.arch)
            if config.regularize_critic:
                arch = agent.config.critic.arch
                for i, q in enumerate(agent.critic.nets, 1):
                    self.packnets[f"q{i}"] = PackNet(q, arch)

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
        if method == "packnet":
            for net in self.packnets.values():
                net.end_task()
            return
        if method == "agem":
            self._store_transitions(task, buffer)
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

    @torch.no_grad()
    def _store_transitions(self, task: int, buffer: TaskReplayBuffer) -> None:
        size = int(buffer.size[task])
        if size == 0:
            raise ValueError(f"task {task} has no replay data to remember")
        n = min(self.config.memory_per_task, size)
        idx = torch.randint(size, (n,), generator=self.gen).to(buffer.device)
        self._memory = None
        self.transitions.append(
            Batch(
                buffer.obs[task, idx].clone(),
                buffer.actions[task, idx].clone(),
                buffer.rewards[task, idx].clone(),
                buffer.next_obs[task, idx].clone(),
                buffer.dones[task, idx].clone(),
                torch.full((n,), task, dtype=torch.long, device=buffer.device),
            )
        )

    # -- as the current task goes on -------------------------------------------------------
    def progress(self, task: int, steps_in_task: int, steps_per_task: int, tasks: int) -> None:
        """PackNet prunes ``task``'s free weights ``packnet_retrain`` of a task before its
        end, and retrains the kept ones for the rest."""
        if not self.packnets:
            return
        retrain = max(1, round(self.config.packnet_retrain * steps_per_task))
        for net in self.packnets.values():
            if net.training != task:
                net.start_task(task)
            if not net.retraining and steps_in_task >= steps_per_task - retrain:
                net.prune(task, keep_share(task, tasks))

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

    def _memory_batch(self) -> Batch:
        if self._memory is None:
            self._memory = Batch(*(torch.cat(p) for p in zip(*self.transitions, strict=True)))
        whole = self._memory
        n = len(whole.obs)
        idx = torch.randint(n, (min(self.config.memory_batch, n),), generator=self.gen)
        order = torch.argsort(whole.task_ids[idx], stable=True)  # batches are task-sorted
        idx = idx[order].to(whole.obs.device)
        return Batch(*(t[idx] for t in whole))

    def _project(self, params: list[Tensor], memory_loss: Tensor) -> None:
        reference = torch.autograd.grad(memory_loss, params, allow_unused=True)
        flat_ref = torch.cat(
            [
                (torch.zeros_like(p) if r is None else r).reshape(-1)
                for p, r in zip(params, reference, strict=True)
            ]
        )
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        projected = agem_project(flat, flat_ref)
        if projected is flat:
            return
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = projected[offset : offset + n].view_as(p).clone()
            offset += n

    def before_critic_step(self) -> None:
        for name in ("q1", "q2"):
            if name in self.packnets:
                self.packnets[name].mask_gradients()
        if self.config.method == "agem" and self.transitions:
            batch = self._memory_batch()
            alpha = self.agent.log_alpha.detach().exp()[batch.task_ids]
            losses, _ = self.agent._critic_losses(batch, alpha)
            self._project(_params(self.agent.critic), losses.sum())

    def before_actor_step(self) -> None:
        if "actor" in self.packnets:
            self.packnets["actor"].mask_gradients()
        if self.config.method == "agem" and self.transitions:
            batch = self._memory_batch()
            alpha = self.agent.log_alpha.detach().exp()[batch.task_ids]
            losses, _ = self.agent._actor_losses(batch.obs, batch.task_ids, alpha)
            self._project(_params(self.agent.actor), losses.sum())

    def after_update(self) -> None:
        for net in self.packnets.values():
            net.restore()

    def act(self, actor: Actor, obs: Tensor, task_ids: Tensor, deterministic: bool) -> Tensor:
        packnet = self.packnets.get("actor")
        if packnet is None:
            return actor.act(obs, task_ids, deterministic)
        tasks = torch.unique(task_ids).tolist()
        if len(tasks) == 1:
            with packnet.view(int(tasks[0])):
                return actor.act(obs, task_ids, deterministic)
        out: Tensor | None = None
        for task in tasks:
            rows = task_ids == task
            with packnet.view(int(task)):
                part = actor.act(obs[rows], task_ids[rows], deterministic)
            if out is None:
                out = part.new_empty((len(obs), part.shape[-1]))
            out[rows] = part
        assert out is not None
        return out

    # -- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.gen.get_state(),
            "anchors": self.anchors,
            "weights": self.weights,
            "memory": (self.memory_obs, self.memory_tasks, self.memory_mean, self.memory_log_std),
            "transitions": [tuple(b) for b in self.transitions],
            "packnet": {name: net.state_dict() for name, net in self.packnets.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["generator"])
        self.anchors = state["anchors"]
        self.weights = state["weights"]
        obs, tasks, mean, log_std = state["memory"]
        self.memory_obs, self.memory_tasks = list(obs), list(tasks)
        self.memory_mean, self.memory_log_std = list(mean), list(log_std)
        self.transitions = [Batch(*b) for b in state.get("transitions", [])]
        self._memory = None
        for name, net_state in state.get("packnet", {}).items():
            self.packnets[name].load_state_dict(net_state)
