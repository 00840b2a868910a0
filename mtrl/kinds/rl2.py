"""RL² (Duan et al. 2016): a recurrent policy that adapts through its memory, trained
with PPO across trials.

A trial is ``episodes_per_trial`` consecutive episodes of one task; the GRU's state
carries across them and starts from zeros at each trial (`mtrl/meta/recurrent.py`),
so what the policy learns in an early episode can pay off in a later one. Each
iteration samples ``trials_per_task`` trials of each of ``meta_batch`` tasks, all
stepped together; advantages are GAE over the whole trial against a linear feature
baseline fitted per task (as rllab's and garage's RL²), and PPO's epochs re-run the
GRU over whole trials in minibatches of trials.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from mtrl.config import bounded, check_fields
from mtrl.errors import ConfigError, TrainingDivergedError
from mtrl.kinds.held_out import HeldOutConfig, Outcome, held_out_report
from mtrl.loading import ActFn
from mtrl.loops.iterations import train_iterations
from mtrl.meta.recurrent import RecurrentActor, RecurrentGaussianPolicy, StepIndex, trial_inputs
from mtrl.meta.rl_sampler import (
    Episodes,
    EpisodeSampler,
    family_horizon,
    meta_family,
)
from mtrl.returns import (
    baseline_features,
    discounted_returns,
    fit_linear_baseline,
    gae,
    normalize,
)
from mtrl.tasks import Task, TaskFamily

# what the commands ask of this kind (mtrl.recipes.RecipeKind)
CURVES = ("iteration", ["pre_return", "post_return"])  # `mtrl plot`
EVALUATES = False  # `mtrl adapt` instead
ADAPT = "mtrl.kinds.rl2_adapt:adapt_rl2"


@dataclass(frozen=True)
class TrialPPOConfig:
    """PPO over whole trials: ``epochs`` passes, each over ``minibatches`` groups of
    trials (every trial's GRU re-run from its start)."""

    lr: float = bounded(1e-3, gt=0.0)
    epochs: int = bounded(5, ge=1, le=100)
    minibatches: int = bounded(4, ge=1)
    clip: float = bounded(0.2, gt=0.0, lt=1.0)
    entropy_coef: float = bounded(0.0, ge=0.0)
    max_grad_norm: float = bounded(1.0, gt=0.0)
    # > 0: an iteration's updates stop at the first minibatch whose approximate KL to
    # the sampling policy exceeds 1.5 x target_kl (SB3's rule); 0: every epoch runs
    target_kl: float = bounded(0.0, ge=0.0)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class RL2Recipe:
    """`mtrl train` recipe for RL² on a parametric task family."""

    kind: Literal["rl2"] = "rl2"
    seed: int = bounded(0, ge=0)
    env: str = "navigation2d"
    threads: int = bounded(1, ge=0)
    workers: int = bounded(0, ge=0)  # env processes for sampling (0: this one); same episodes
    horizon: int = bounded(0, ge=0)  # 0: the env's registered time limit
    meta_batch: int = bounded(20, ge=1)  # tasks per iteration
    trials_per_task: int = bounded(10, ge=1)
    episodes_per_trial: int = bounded(2, ge=1)
    iterations: int = bounded(100, ge=1)
    gru: int = 256  # units of the recurrent state (Duan et al.: 256)
    init_std: float = bounded(1.0, gt=0.0)
    gamma: float = bounded(0.99, gt=0.0, le=1.0)
    gae_lambda: float = bounded(0.95, ge=0.0, le=1.0)
    log_every: int = bounded(1, ge=1)
    checkpoint_every: int = bounded(10, ge=1)
    keep_checkpoints: int = bounded(3, ge=0)  # newest checkpoints kept; 0 keeps all
    eval_seed: int = bounded(1_000_003, ge=0)
    ppo: TrialPPOConfig = field(default_factory=TrialPPOConfig)
    held_out: HeldOutConfig = field(default_factory=HeldOutConfig)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.gru < 1:
            raise ConfigError(
                f"gru = {self.gru}: RL² adapts through a recurrent state, and a policy "
                "without one cannot carry what it learns from one episode to the next; "
                "set gru >= 1 (256 in Duan et al.), or train a multi-task baseline with "
                "kind = 'mtppo'"
            )
        if self.ppo.minibatches > self.meta_batch * self.trials_per_task:
            raise ConfigError(
                f"ppo.minibatches = {self.ppo.minibatches} exceeds the "
                f"{self.meta_batch * self.trials_per_task} trials of an iteration "
                "(meta_batch x trials_per_task); lower ppo.minibatches"
            )


def trial_baseline(x: Tensor, returns: Tensor, masks: Tensor, tasks: int) -> Tensor:
    """Values ``[L, B]`` of a linear feature baseline fitted per task over its trials'
    steps (features of the trial's inputs and of the step's place in the trial)."""
    length, batch = masks.shape
    shape = (length, tasks, batch // tasks)
    features = baseline_features(x.reshape(*shape, -1), float(length))
    return fit_linear_baseline(features, returns.reshape(shape), masks.reshape(shape)).reshape(
        length, batch
    )


@dataclass(frozen=True)
class Trials:
    """One iteration's trials as sequences over ``B = tasks x trials``: inputs,
    actions, masks, the log-probabilities they were sampled with, and advantages of GAE
    over each whole trial (returns run on from one episode into the next)."""

    x: Tensor
    actions: Tensor
    masks: Tensor
    old_logp: Tensor
    adv: Tensor

    @classmethod
    def of(cls, episodes: list[Episodes], policy: RecurrentGaussianPolicy, r: RL2Recipe) -> Trials:
        x, actions, rewards, masks = trial_inputs(episodes)
        ix = StepIndex(masks)
        with torch.no_grad():
            old_logp = policy.unroll(x, masks).log_prob(actions).sum(-1)
        rew, steps = ix.compact(rewards), ix.compact(masks)
        returns = ix.expand(discounted_returns(rew, steps, r.gamma), masks.shape)
        values = trial_baseline(x, returns, masks, episodes[0].masks.shape[1])
        adv = gae(rew, ix.compact(values), steps, r.gamma, r.gae_lambda)
        adv = normalize(ix.expand(adv, masks.shape), masks, dims=(0, 1))
        return cls(x, actions, masks, old_logp, adv)

    def columns(self, cols: Tensor) -> Trials:
        """The trials ``cols`` (a minibatch)."""
        return Trials(*(t[:, cols] for t in (self.x, self.actions, self.masks,
                                               self.old_logp, self.adv)))  # fmt: skip


def trial_loss(
    policy: RecurrentGaussianPolicy, b: Trials, cfg: TrialPPOConfig
) -> tuple[Tensor, Tensor]:
    """PPO's clipped surrogate and entropy bonus, means over the steps that happened,
    and the approximate KL from the sampling policy (the mean of r - 1 - log r over
    those steps, r the probability ratio: Schulman's estimator, as SB3's target_kl)."""
    dist = policy.unroll(b.x, b.masks)
    log_ratio = dist.log_prob(b.actions).sum(-1) - b.old_logp
    ratio = torch.exp(log_ratio)
    surr = torch.minimum(ratio * b.adv, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * b.adv)
    count = b.masks.sum().clamp_min(1.0)
    entropy = dist.entropy().sum(-1)
    kl = (((ratio - 1) - log_ratio).detach() * b.masks).sum() / count
    return -((surr + cfg.entropy_coef * entropy) * b.masks).sum() / count, kl


class RL2:
    """Sampling trials with the recurrent policy and PPO updates over them."""

    def __init__(self, recipe: RL2Recipe, sampler: EpisodeSampler) -> None:
        self.recipe, self.sampler = recipe, sampler
        self.policy = RecurrentGaussianPolicy(
            sampler.obs_dim, sampler.act_dim, recipe.gru, recipe.init_std
        )
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=recipe.ppo.lr)

    @property
    def module(self) -> nn.Module:
        return self.policy

    def trials(self, tasks: list[Task], episodes: int, *, keep_memory: bool = True,
               mean: bool = False) -> list[Episodes]:  # fmt: skip
        """One trial of ``episodes`` episodes per sampler slot on ``tasks``."""
        self.sampler.set_tasks(tasks)
        actor = RecurrentActor(self.policy, len(tasks), self.sampler.n, mean=mean)
        out = []
        for k in range(episodes):
            if k:
                actor.new_episode(keep_memory)
            out.append(self.sampler.sample(actor, actor.observe))
        return out

    def outcome(self, tasks: list[Task], episodes: int, keep_memory: bool = True) -> Outcome:
        """Mean return (and success rate, where reported) per task ``[episodes, T]`` of
        each episode of one trial per slot."""
        trial = self.trials(tasks, episodes, keep_memory=keep_memory)
        returns = torch.stack([ep.episode_returns().mean(dim=1) for ep in trial])
        won = [ep.episode_successes() for ep in trial]
        if any(w is None for w in won):
            return returns, None
        return returns, torch.stack([w.mean(dim=1) for w in won if w is not None])

    def step(self, tasks: list[Task]) -> dict[str, float]:
        """One iteration: trials on ``tasks``, then PPO's epochs over them."""
        r = self.recipe
        episodes = self.trials(tasks, r.episodes_per_trial)
        data = Trials.of(episodes, self.policy, r)
        losses: list[float] = []
        kls: list[float] = []
        for cols in self._minibatches(data):
            done = self._update(data.columns(cols), may_stop=bool(losses))
            if done is None:  # past target_kl: this and the later minibatches skipped
                break
            losses.append(done[0])
            kls.append(done[1])
        returns = [float(ep.episode_returns().mean()) for ep in episodes]
        return {
            "env_steps": float(sum(ep.masks.sum() for ep in episodes)),
            "pre_return": returns[0],
            "post_return": returns[-1],
            "loss": float(np.mean(losses)),
            "kl": kls[-1],  # before the last update applied
            "updates": float(len(losses)),
            "std": float(self.policy.log_std.detach().exp().mean()),
        }

    def _minibatches(self, data: Trials) -> list[Tensor]:
        cfg, total = self.recipe.ppo, data.masks.shape[1]
        groups = []
        for _ in range(cfg.epochs):
            groups += list(torch.randperm(total).tensor_split(cfg.minibatches))
        return groups

    def _update(self, batch: Trials, may_stop: bool = False) -> tuple[float, float] | None:
        """One gradient step on ``batch``: its loss and the approximate KL before it;
        None (no step) where ``may_stop`` and that KL is past 1.5 x ``ppo.target_kl``
        (the first minibatch always steps: on-policy, its KL is rounding error)."""
        ppo = self.recipe.ppo
        loss, kl_tensor = trial_loss(self.policy, batch, ppo)
        value, kl = float(loss.detach()), float(kl_tensor)
        if not math.isfinite(value):
            raise TrainingDivergedError(f"RL² loss is {value}; lower ppo.lr ({ppo.lr})")
        if may_stop and ppo.target_kl > 0 and kl > 1.5 * ppo.target_kl:
            return None
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.policy.parameters(), ppo.max_grad_norm)
        self.opt.step()
        return value, kl

    def checkpoint(self) -> dict[str, Any]:
        return {"rl2_policy": self.policy.state_dict(), "optimizer": self.opt.state_dict(),
                "sampler": self.sampler.state_dict()}  # fmt: skip

    def restore(self, state: Mapping[str, Any]) -> None:
        self.policy.load_state_dict(state["rl2_policy"])
        self.opt.load_state_dict(state["optimizer"])
        if "sampler" in state:  # runs checkpointed before the sampler's state was kept
            self.sampler.load_state_dict(state["sampler"])

    def close(self) -> None:
        self.sampler.close()


def build(recipe: RL2Recipe, num_tasks: int, trials: int) -> tuple[RL2, TaskFamily]:
    family = meta_family(recipe.env, "RL²")
    horizon = family_horizon(family, recipe.env, recipe.horizon)
    sampler = EpisodeSampler(family, num_tasks, trials, horizon, recipe.seed, recipe.workers)
    return RL2(recipe, sampler), family


def held_out_results(recipe: RL2Recipe, state: Mapping[str, Any]) -> dict[str, Any]:
    """Each held-out task's return and success in episode ``held_out.steps`` of a trial
    (after that many episodes of experience), ``trials_per_task`` trials each."""
    learner, family = build(recipe, recipe.held_out.tasks, recipe.trials_per_task)
    learner.policy.load_state_dict(state["rl2_policy"])
    episodes = recipe.held_out.steps + 1
    return held_out_report(recipe, family, learner, lambda t: learner.outcome(t, episodes))


def train_rl2(
    recipe: RL2Recipe,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = False,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """Meta-train RL², logging the first and last episodes' returns of each trial."""
    family = meta_family(recipe.env, "RL²")  # fails before the run directory is made
    return train_iterations(
        recipe,
        run_dir,
        lambda: build(recipe, recipe.meta_batch, recipe.trials_per_task)[0],
        lambda rng: family.sample_tasks(recipe.meta_batch, rng),
        resume=resume,
        progress=progress,
        init_from=init_from,
        init_key="rl2_policy",
        held_out=(lambda state: held_out_results(recipe, state)) if recipe.held_out.tasks else None,
    )


def load_policy(cfg: Any, state: dict[str, Any]) -> tuple[Any, ActFn]:
    """The trained recurrent policy and, for ``mtrl.load``'s stateless ``act``, its
    action at a trial's first step (fresh memory: the policy before any adaptation).
    To act with memory, step ``RecurrentActor(model, 1, n)`` and ``observe`` rewards."""
    learner, _ = build(cfg, 1, 1)
    learner.close()
    learner.policy.load_state_dict(state["rl2_policy"])
    policy = learner.policy

    @torch.no_grad()
    def act(obs: dict[str, np.ndarray], deterministic: bool) -> np.ndarray:
        o = torch.as_tensor(obs["observation"], dtype=torch.float32)
        actor = RecurrentActor(policy, o.shape[0], 1, mean=deterministic)
        return actor(o.unsqueeze(1))[:, 0].numpy()

    return policy, act
