"""Multi-task SAC: twin task-conditioned critics (or an ensemble; scalar or categorical,
``mtrl.agents.distributional``), a tanh-Gaussian actor and one learned entropy
temperature per task (Yu et al. 2019, Meta-World's MT-SAC).

:class:`MTSAC` holds the networks and performs one gradient update on a task-sorted
batch; the environment loop is :mod:`mtrl.loops.offpolicy`, the recipe
:mod:`mtrl.kinds.mtsac`.
"""

from __future__ import annotations

import copy
import functools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from mtrl.agents.balancing import SURGERY_MODES, BalancingMode, TaskBalancer
from mtrl.agents.distributional import (
    HLGaussConfig,
    classification_loss,
    expected_value,
    hl_gauss_probs,
)
from mtrl.agents.popart import PopArt, PopArtConfig
from mtrl.agents.replay import Batch
from mtrl.agents.task_stats import per_task_mean
from mtrl.config import bounded, check_fields
from mtrl.errors import ConfigError
from mtrl.nets import MultiTaskNet, NetConfig
from mtrl.nets.layers import fix_outputs

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


@dataclass(frozen=True)
class SACConfig:
    """Hyper-parameters of the update (defaults: Meta-World's MT-SAC baseline)."""

    gamma: float = bounded(0.99, gt=0.0, le=1.0)
    tau: float = bounded(0.005, gt=0.0, le=1.0)
    actor_lr: float = bounded(3e-4, gt=0.0)
    critic_lr: float = bounded(3e-4, gt=0.0)
    alpha_lr: float = bounded(3e-4, gt=0.0)
    init_alpha: float = bounded(1.0, gt=0.0)
    # false: the temperature stays at init_alpha (SB3's fixed ent_coef) instead of being
    # tuned towards target_entropy
    tune_alpha: bool = True
    target_entropy: float | None = None  # default: -action_dim
    # rewards multiplied by this in the TD targets (rlkit's reward_scale): the entropy
    # bonus is weighed against the reward, so a temperature that is small beside V2's
    # 0-10 per step is ten times larger beside a 0/1 success reward
    reward_scale: float = bounded(1.0, gt=0.0)
    # per-task losses: plain mean, gradient surgery on actor and critics (pcgrad,
    # cagrad), or a loss weighting of the critics' TD losses (uncertainty, gradnorm,
    # famo: they need losses bounded below, which the actor's are not)
    balancing: BalancingMode = "none"
    cagrad_c: float = bounded(0.5, ge=0.0)
    gradnorm_alpha: float = bounded(1.5, ge=0.0)
    weight_lr: float = bounded(0.025, gt=0.0)  # GradNorm's and FAMO's task weights
    # torch.compile the loss computations (CUDA graphs too with compile_mode
    # "reduce-overhead" on a GPU); same numbers as eager within float tolerance.
    compile: bool = False
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"
    # a critic ensemble (REDQ, RLPD): ``critics`` Q-networks, the TD target the min
    # over a random ``target_critics`` of them (all when equal), the actor's Q their
    # min or mean; 2, 2, "min" is SAC's twin critics
    critics: int = bounded(2, ge=2)
    target_critics: int = bounded(2, ge=1)
    actor_q: Literal["min", "mean"] = "min"
    # present: categorical critics trained by classification against HL-Gauss targets
    hl_gauss: HLGaussConfig | None = None
    # present: each task's values learned on the scale of its own TD targets (PopArt)
    popart: PopArtConfig | None = None
    actor: NetConfig = field(default_factory=NetConfig)
    critic: NetConfig = field(default_factory=NetConfig)

    def __post_init__(self) -> None:
        check_fields(self, "sac")
        if self.target_critics > self.critics:
            raise ConfigError(
                f"sac.target_critics = {self.target_critics} draws from sac.critics = "
                f"{self.critics} Q-networks: give target_critics <= critics"
            )
        if self.popart is not None and (self.hl_gauss is not None or self.compile):
            raise ConfigError(
                "sac.popart normalises scalar critics' targets in eager mode: it cannot go "
                "with sac.hl_gauss (categorical critics have their own bounded loss) or "
                "sac.compile = true; drop one of them"
            )
        if self.compile and self.balancing in ("pcgrad", "cagrad", "gradnorm"):
            raise ConfigError(
                f"sac.compile = true cannot run balancing = {self.balancing!r}: it needs "
                "several (or double) backward passes through one graph, which compiled "
                "graphs do not support. Use compile = false, or balancing none, "
                "uncertainty or famo"
            )


def squashed_sample(mean: Tensor, log_std: Tensor) -> tuple[Tensor, Tensor]:
    """A reparameterized tanh-Gaussian action in [-1, 1] and its log-probability."""
    std = log_std.exp()
    pre = mean + std * torch.randn_like(mean)
    action = torch.tanh(pre)
    normal_logp = (-0.5 * ((pre - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    # log|d tanh/dx| = 2 (log 2 - x - softplus(-2x)), the numerically stable form
    correction = (2.0 * (math.log(2.0) - pre - nn.functional.softplus(-2.0 * pre))).sum(-1)
    return action, normal_logp - correction


class Actor(nn.Module):
    """Task-conditioned tanh-Gaussian policy; actions in [-1, 1] (rescaled by the loop)."""

    def __init__(self, config: NetConfig, obs_dim: int, act_dim: int, num_tasks: int) -> None:
        super().__init__()
        self.net = MultiTaskNet(config, obs_dim, 2 * act_dim, num_tasks)

    def forward(self, obs: Tensor, task_ids: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_std = self.net(obs, task_ids).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: Tensor, task_ids: Tensor) -> tuple[Tensor, Tensor]:
        return squashed_sample(*self(obs, task_ids))

    def set_spread(self, std: float) -> None:
        """The action noise := ``std`` (pre-tanh) in every state and task, the mean
        untouched: a cloned actor's spread where SAC starts from it."""
        fix_outputs(self.net.output_layer(), self.net.out_dim // 2, math.log(std))

    def act(self, obs: Tensor, task_ids: Tensor, deterministic: bool) -> Tensor:
        mean, log_std = self(obs, task_ids)
        return torch.tanh(mean) if deterministic else squashed_sample(mean, log_std)[0]


class Critic(nn.Module):
    """An ensemble of task-conditioned Q-networks ``q1 .. qN`` (two: SAC's twin critics),
    each a scalar or (``hl_gauss``) logits over return bins whose expectation is its
    value."""

    edges: Tensor  # HL-Gauss's bin edges and centres (buffers)
    centres: Tensor
    popart: PopArt | None

    def __init__(
        self,
        config: NetConfig,
        obs_dim: int,
        act_dim: int,
        num_tasks: int,
        count: int = 2,
        hl_gauss: HLGaussConfig | None = None,
        popart: PopArtConfig | None = None,
    ) -> None:
        super().__init__()
        self.count, self.hl_gauss = count, hl_gauss
        self.popart = None if popart is None else PopArt(popart, count, num_tasks)
        out = 1 if hl_gauss is None else hl_gauss.bins
        for i in range(count):
            self.add_module(f"q{i + 1}", MultiTaskNet(config, obs_dim + act_dim, out, num_tasks))
        if hl_gauss is not None:  # not in the state dict: the config makes them
            self.register_buffer("edges", hl_gauss.edges(), persistent=False)
            self.register_buffer("centres", hl_gauss.centres(), persistent=False)

    @property
    def nets(self) -> list[MultiTaskNet]:
        return [getattr(self, f"q{i + 1}") for i in range(self.count)]

    def outputs(self, obs: Tensor, act: Tensor, task_ids: Tensor) -> tuple[Tensor, ...]:
        """Each Q-network's raw output: ``[batch, 1]`` values or ``[batch, bins]`` logits."""
        x = torch.cat([obs, act], dim=-1)
        return tuple(q(x, task_ids) for q in self.nets)

    def forward(self, obs: Tensor, act: Tensor, task_ids: Tensor) -> tuple[Tensor, ...]:
        raw = self.outputs(obs, act, task_ids)
        if self.hl_gauss is not None:
            return tuple(expected_value(logits, self.centres) for logits in raw)
        if self.popart is None:
            return tuple(v.squeeze(-1) for v in raw)
        pop = self.popart
        return tuple(pop.values(n, task_ids) for n in self._normalised(raw, task_ids))

    def _normalised(self, raw: Sequence[Tensor], task_ids: Tensor) -> list[Tensor]:
        assert self.popart is not None
        return [self.popart.normalised(i, v.squeeze(-1), task_ids) for i, v in enumerate(raw)]

    def td_errors(self, obs: Tensor, act: Tensor, task_ids: Tensor, target: Tensor) -> Tensor:
        """Per-row loss summed over the critics: squared TD errors, or the
        cross-entropy against the target's HL-Gauss probabilities."""
        raw = self.outputs(obs, act, task_ids)
        if self.popart is not None:  # on the normalised scale
            target = self.popart.targets(target, task_ids)
            terms = [(n - target) ** 2 for n in self._normalised(raw, task_ids)]
        elif self.hl_gauss is None:
            terms = [(v.squeeze(-1) - target) ** 2 for v in raw]
        else:
            sigma = self.hl_gauss.sigma * self.hl_gauss.width
            probs = hl_gauss_probs(target, self.edges, sigma)
            terms = [classification_loss(logits, probs) for logits in raw]
        return functools.reduce(operator.add, terms)

    def regularization(self) -> Tensor:
        terms = [q.regularization() for q in self.nets]
        return functools.reduce(operator.add, terms)

    def shared_weights(self) -> list[Tensor]:
        """Each Q-network's last shared layer weights (empty for ``soft`` sharing)."""
        return [w for q in self.nets for w in q.last_shared_weight()]


def pessimistic(values: Sequence[Tensor], subset: int | None = None) -> Tensor:
    """The elementwise minimum of an ensemble's values, over all of them or over a
    random ``subset`` of them (REDQ, RLPD: a fresh draw from torch's global RNG each
    call, which checkpoints carry)."""
    chosen = list(values)
    if subset is not None and subset < len(chosen):
        picks = torch.randperm(len(chosen))[:subset].tolist()
        chosen = [chosen[i] for i in sorted(picks)]
    return functools.reduce(torch.minimum, chosen)


class UpdateExtension:
    """What a component adds to MT-SAC's update and acting (a continual-learning
    penalty such as EWC's, a gradient projection such as A-GEM's, PackNet's weight
    masks); the defaults add nothing."""

    def actor_penalty(self) -> Tensor | None:
        """A term added to the actor's loss."""
        return None

    def critic_penalty(self) -> Tensor | None:
        """A term added to the critics' loss."""
        return None

    def before_critic_step(self) -> None:
        """Called with the critics' gradients in ``.grad``, before the optimizer step."""

    def before_actor_step(self) -> None:
        """Called with the actor's gradients in ``.grad``, before the optimizer step."""

    def after_update(self) -> None:
        """Called after the update's optimizer steps."""

    def updates_actor(self) -> bool:
        """Whether this update steps the actor and the temperatures (False: the critics
        only, as while they learn a cloned actor's values online)."""
        return True

    def act(self, actor: Actor, obs: Tensor, task_ids: Tensor, deterministic: bool) -> Tensor:
        """The actor's actions (PackNet acts for each task with that task's weights)."""
        return actor.act(obs, task_ids, deterministic)

    def next_value(self, agent: MTSAC, next_obs: Tensor, task_ids: Tensor, alpha: Tensor) -> Tensor:
        """The soft value of the next states that the TD target bootstraps from
        (gradient-free): the target critics at the actor's sampled next action."""
        next_a, next_logp = agent.actor.sample(next_obs, task_ids)
        values = agent.critic_target(next_obs, next_a, task_ids)
        return pessimistic(values, agent.config.target_critics) - alpha * next_logp


class ExtensionWrapper(UpdateExtension):
    """An extension around another one (a demonstration component around a continual
    method or the cloning regulariser): every hook it does not override passes through."""

    def __init__(self, inner: UpdateExtension) -> None:
        self.inner = inner

    def actor_penalty(self) -> Tensor | None:
        return self.inner.actor_penalty()

    def critic_penalty(self) -> Tensor | None:
        return self.inner.critic_penalty()

    def before_critic_step(self) -> None:
        self.inner.before_critic_step()

    def before_actor_step(self) -> None:
        self.inner.before_actor_step()

    def after_update(self) -> None:
        self.inner.after_update()

    def updates_actor(self) -> bool:
        return self.inner.updates_actor()

    def act(self, actor: Actor, obs: Tensor, task_ids: Tensor, deterministic: bool) -> Tensor:
        return self.inner.act(actor, obs, task_ids, deterministic)

    def next_value(self, agent: MTSAC, next_obs: Tensor, task_ids: Tensor, alpha: Tensor) -> Tensor:
        return self.inner.next_value(agent, next_obs, task_ids, alpha)


class MTSAC(nn.Module):
    """Networks, optimizers and the update of multi-task SAC."""

    def __init__(self, config: SACConfig, obs_dim: int, act_dim: int, num_tasks: int) -> None:
        super().__init__()
        self.config = config
        self.num_tasks = num_tasks
        self.dims = (obs_dim, act_dim)
        self.actor = self._new_actor()
        self.critic = self._new_critic()
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.full((num_tasks,), math.log(config.init_alpha)))
        self.target_entropy = (
            -float(act_dim) if config.target_entropy is None else config.target_entropy
        )
        mode = config.balancing
        if mode == "gradnorm" and not self.critic.shared_weights():
            raise ConfigError(
                "balancing = 'gradnorm' needs a layer shared by all tasks; "
                "the critic's arch 'soft' has none"
            )
        self.critic_balancer = TaskBalancer(
            mode,
            num_tasks,
            lr=config.critic_lr,
            cagrad_c=config.cagrad_c,
            gradnorm_alpha=config.gradnorm_alpha,
            weight_lr=config.weight_lr,
        )
        self.actor_balancer = TaskBalancer(
            mode if mode in SURGERY_MODES else "none", num_tasks, cagrad_c=config.cagrad_c
        )
        self.actor_opt = self._optimizer(self.actor, config.actor_lr)
        self.critic_opt = self._optimizer(self.critic, config.critic_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=config.alpha_lr)
        self.extension = UpdateExtension()
        self._critic_fn: Any = self._critic_losses
        self._actor_fn: Any = self._actor_losses
        if config.compile:  # forward + backward of both losses compiled; steps stay eager
            self._critic_fn = torch.compile(self._critic_losses, mode=config.compile_mode)
            self._actor_fn = torch.compile(self._actor_losses, mode=config.compile_mode)

    def _new_actor(self) -> Actor:
        return Actor(self.config.actor, *self.dims, self.num_tasks)

    def _new_critic(self) -> Critic:
        c = self.config
        return Critic(c.critic, *self.dims, self.num_tasks, c.critics, c.hl_gauss, c.popart)

    def reset_networks(self, actor: bool, critic: bool) -> None:
        """Re-draw the actor's and/or the critics' parameters from their initial
        distribution (the target critics copy the new ones) and restart the optimizers;
        the temperatures stay, and so do PopArt's statistics (they describe the tasks'
        returns, not the networks)."""
        with torch.no_grad():
            if actor:
                self.actor.load_state_dict(self._new_actor().state_dict())
            if critic:
                fresh = self._new_critic().state_dict()
                kept = {k: v for k, v in self.critic.state_dict().items()
                        if k.endswith(("popart.mean", "popart.second"))}  # fmt: skip
                self.critic.load_state_dict(fresh | kept)
                self.critic_target.load_state_dict(self.critic.state_dict())
        if actor:
            self.actor_opt = self._optimizer(self.actor, self.config.actor_lr)
        if critic:
            self.critic_opt = self._optimizer(self.critic, self.config.critic_lr)

    @staticmethod
    def _optimizer(net: nn.Module, lr: float) -> torch.optim.Adam:
        return torch.optim.Adam(net.parameters(), lr=lr, fused=True)

    def _critic_losses(self, batch: Batch, alpha: Tensor) -> tuple[Tensor, Tensor]:
        """Per-task TD losses of every critic against the soft target, and the target."""
        tid = batch.task_ids
        with torch.no_grad():
            target_v = self.extension.next_value(self, batch.next_obs, tid, alpha)
            rewards = batch.rewards * self.config.reward_scale  # exact at 1.0
            target = rewards + self.config.gamma * (1.0 - batch.dones) * target_v
            if self.critic.popart is not None:
                self.critic.popart.update(target, tid, *self._target_popart())
        return self._td_losses(batch, target), target

    def _target_popart(self) -> list[PopArt]:
        return [] if self.critic_target.popart is None else [self.critic_target.popart]

    def _td_losses(self, batch: Batch, target: Tensor) -> Tensor:
        td = self.critic.td_errors(batch.obs, batch.actions, batch.task_ids, target)
        return per_task_mean(td, batch.task_ids, self.num_tasks)

    def _actor_losses(self, obs: Tensor, tid: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
        """Per-task actor losses (critic parameters frozen by the caller) and log-probs."""
        action, logp = self.actor.sample(obs, tid)
        q = self.actor_value(self.critic(obs, action, tid))
        losses = per_task_mean(alpha * logp - q, tid, self.num_tasks)
        if self.critic.popart is not None:  # each task's loss in units of its own values
            losses = losses / self.critic.popart.std
        return losses, logp

    def actor_value(self, values: Sequence[Tensor]) -> Tensor:
        """The critics' values combined as the actor maximises them (``actor_q``: their
        minimum, or their mean as RLPD's ensemble); a term scaled against the actor's
        ``-Q`` uses the same value."""
        if self.config.actor_q == "mean":
            return torch.stack(list(values)).mean(0)
        return pessimistic(values)

    def act(self, obs: Tensor, task_ids: Tensor, deterministic: bool) -> Tensor:
        """Actions in [-1, 1] for a batch of observations of the given tasks."""
        return self.extension.act(self.actor, obs, task_ids, deterministic)

    def reset_optimizers(self) -> None:
        """Fresh optimizer state (a continual-learning task switch, as Continual World)."""
        c = self.config
        self.actor_opt = self._optimizer(self.actor, c.actor_lr)
        self.critic_opt = self._optimizer(self.critic, c.critic_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=c.alpha_lr)

    def update(self, batch: Batch, tasks_present: int | None = None) -> dict[str, float]:
        """One gradient step of critics, actor and temperatures (the critics' alone where
        the extension holds the actor); returns scalar metrics.

        ``tasks_present``: how many tasks the batch holds when fewer than all (tasks
        not yet unlocked); per-task losses are then averaged over those tasks only.
        """
        tid = batch.task_ids
        scale = 1.0
        if tasks_present is not None and tasks_present < self.num_tasks:
            scale = self.num_tasks / tasks_present
        alpha = self.log_alpha.detach().exp()[tid]
        critic_losses = self._critic_step(batch, alpha, scale)
        metrics = {"critic_loss": float(critic_losses.mean().detach())}
        if self.extension.updates_actor():
            metrics |= self._actor_step(batch, alpha, scale)
        else:
            metrics["alpha"] = float(self.log_alpha.detach().exp().mean())
        self._update_target()
        self.extension.after_update()
        return metrics

    def _actor_step(self, batch: Batch, alpha: Tensor, scale: float) -> dict[str, float]:
        """One (balanced) gradient step of the actor, then of the temperatures."""
        tid = batch.task_ids
        self.critic.requires_grad_(False)
        actor_losses, logp = self._actor_fn(batch.obs, tid, alpha)
        if scale != 1.0:
            actor_losses = actor_losses * scale
        actor_reg = self.actor.net.regularization()
        extra = self.extension.actor_penalty()
        if extra is not None:
            actor_reg = actor_reg + extra
        self.actor_balancer.step(
            self.actor_opt,
            list(self.actor.parameters()),
            actor_losses,
            actor_reg,
            before_step=self.extension.before_actor_step,
        )
        self.critic.requires_grad_(True)
        if self.config.tune_alpha:
            alpha_loss = -(self.log_alpha[tid] * (logp.detach() + self.target_entropy)).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
        return {
            "actor_loss": float(actor_losses.mean().detach()),
            "alpha": float(self.log_alpha.detach().exp().mean()),
            "entropy": float(-logp.detach().mean()),
        }

    def _critic_step(self, batch: Batch, alpha: Tensor, scale: float = 1.0) -> Tensor:
        """One (balanced) gradient step of the critics; returns per-task losses."""
        critic_losses, target = self._critic_fn(batch, alpha)
        if scale != 1.0:
            critic_losses = critic_losses * scale
        critic_reg = self.critic.regularization()
        extra = self.extension.critic_penalty()
        if extra is not None:
            critic_reg = critic_reg + extra
        self.critic_balancer.step(
            self.critic_opt,
            list(self.critic.parameters()),
            critic_losses,
            critic_reg,
            shared=self.critic.shared_weights(),
            recompute=lambda: self._td_losses(batch, target) * scale,
            before_step=self.extension.before_critic_step,
        )
        return critic_losses

    def _update_target(self) -> None:
        with torch.no_grad():
            online: list[Tensor] = list(self.critic.parameters())
            target_params: list[Tensor] = list(self.critic_target.parameters())
            torch._foreach_lerp_(target_params, online, self.config.tau)

    def critic_update(self, batch: Batch) -> float:
        """A critic-only step (and target update) with the actor and temperatures held:
        fitting the critics to a fixed policy, e.g. a cloned one on demonstrations."""
        alpha = self.log_alpha.detach().exp()[batch.task_ids]
        losses = self._critic_step(batch, alpha)
        self._update_target()
        return float(losses.mean().detach())

    def optimizer_state(self) -> dict[str, Any]:
        return {
            "actor": self.actor_opt.state_dict(),
            "critic": self.critic_opt.state_dict(),
            "alpha": self.alpha_opt.state_dict(),
            "critic_balancer": self.critic_balancer.optimizer_state(),
        }

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        self.actor_opt.load_state_dict(state["actor"])
        self.critic_opt.load_state_dict(state["critic"])
        self.alpha_opt.load_state_dict(state["alpha"])
        self.critic_balancer.load_optimizer_state(state.get("critic_balancer", {}))
