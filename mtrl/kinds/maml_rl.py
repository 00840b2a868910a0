"""MAML-RL: a policy-gradient inner step and a clipped (PPO-style) or trust-region
(TRPO, the original MAML-RL's) outer update.

Inner loop (per task, all tasks at once): REINFORCE/VPG on ``episodes_per_task``
episodes with GAE advantages over a linear feature baseline, ``inner_steps`` SGD steps
of ``meta.inner_lr`` (or Meta-SGD's learned rates; ANIL adapts the head only).
Outer loop: episodes of the adapted policies, then ``outer.epochs`` Adam steps on the
clipped surrogate, differentiating through the adaptation (second order unless
``fomaml``), as in ProMP without its KL penalty; or (``outer.method = "trpo"``) one
TRPO step on the unclipped surrogate within ``outer.max_kl`` of the adapted policies'
KL, its Fisher-vector products taken through the adaptation (Finn et al. 2017).
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
from torch.distributions import kl_divergence

from mtrl.config import bounded, check_fields
from mtrl.errors import ConfigError, TrainingDivergedError
from mtrl.kinds.held_out import HeldOutConfig, held_out_report
from mtrl.loading import ActFn
from mtrl.loops.iterations import train_iterations
from mtrl.meta.batched import stacked_sgd
from mtrl.meta.functional import Params
from mtrl.meta.maml import (
    MetaLearnerConfig,
    adapted_names,
    initial_lrs,
    learned_lrs,
    lr_tensors,
)
from mtrl.meta.rl_policy import GaussianMLPPolicy
from mtrl.meta.rl_sampler import (
    Episodes,
    EpisodeSampler,
    family_horizon,
    meta_family,
)
from mtrl.meta.trpo import trpo_step
from mtrl.returns import baseline_features, discounted_returns, fit_linear_baseline, gae, normalize
from mtrl.tasks import Task, TaskFamily

# what the commands ask of this kind (mtrl.recipes.RecipeKind)
CURVES = ("iteration", ["pre_return", "post_return"])  # `mtrl plot`
EVALUATES = False  # `mtrl adapt` instead
ADAPT = "mtrl.kinds.maml_rl_adapt:adapt_meta_rl"


@dataclass(frozen=True)
class OuterConfig:
    """The outer update: Adam epochs on the clipped surrogate (``clip``: lr, epochs,
    clip, max_grad_norm), or a TRPO step (``trpo``: max_kl, cg_iters, cg_damping,
    backtrack, line_search_steps; garage's and learn2learn's MAML-TRPO defaults)."""

    method: Literal["clip", "trpo"] = "clip"
    lr: float = bounded(1e-3, gt=0.0)
    epochs: int = bounded(5, ge=1, le=100)
    clip: float = bounded(0.2, gt=0.0, lt=1.0)
    max_grad_norm: float = bounded(10.0, gt=0.0)
    max_kl: float = bounded(0.01, gt=0.0)
    cg_iters: int = bounded(10, ge=1)
    cg_damping: float = bounded(1e-5, ge=0.0)
    backtrack: float = bounded(0.5, gt=0.0, lt=1.0)
    line_search_steps: int = bounded(15, ge=1)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class MetaRLRecipe:
    """`mtrl train` recipe for MAML-RL on a parametric task family."""

    kind: Literal["maml-rl"] = "maml-rl"
    seed: int = bounded(0, ge=0)
    env: str = "navigation2d"
    threads: int = bounded(1, ge=0)
    workers: int = bounded(0, ge=0)  # env processes for sampling (0: this one); same episodes
    horizon: int = bounded(0, ge=0)  # 0: the env's registered time limit
    meta_batch: int = bounded(20, ge=1)  # tasks per iteration
    episodes_per_task: int = bounded(20, ge=1)
    iterations: int = bounded(100, ge=1)
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    init_std: float = bounded(1.0, gt=0.0)
    gamma: float = bounded(0.99, gt=0.0, le=1.0)
    gae_lambda: float = bounded(1.0, ge=0.0, le=1.0)
    log_every: int = bounded(1, ge=1)
    checkpoint_every: int = bounded(10, ge=1)
    keep_checkpoints: int = bounded(3, ge=0)  # newest checkpoints kept; 0 keeps all
    eval_seed: int = bounded(1_000_003, ge=0)
    meta: MetaLearnerConfig = field(default_factory=lambda: MetaLearnerConfig(inner_lr=0.1))
    outer: OuterConfig = field(default_factory=OuterConfig)
    held_out: HeldOutConfig = field(default_factory=HeldOutConfig)

    def __post_init__(self) -> None:
        check_fields(self)
        if any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden = {self.hidden!r}: every layer needs >= 1 unit")


class MetaPolicy(nn.Module):
    """A Gaussian policy plus its inner-loop learning rates (learned for Meta-SGD)."""

    def __init__(self, policy: GaussianMLPPolicy, config: MetaLearnerConfig) -> None:
        super().__init__()
        self.policy = policy
        self.config = config
        self.adapted = adapted_names(policy, config)
        self.fixed_lrs = initial_lrs(self.adapted, config)
        self.lrs = learned_lrs(policy, self.fixed_lrs, config)

    def inner_lrs(self) -> dict[str, Tensor]:
        return lr_tensors(self.policy, self.fixed_lrs, self.lrs, self.config)

    def params(self) -> Params:
        return dict(self.policy.named_parameters())


def _flat(ep: Episodes) -> tuple[Tensor, Tensor, Tensor]:
    """``obs [T, H*n, obs]``, ``actions [T, H*n, act]``, ``masks [T, H*n]``."""
    h, t, n = ep.masks.shape
    obs = ep.obs.permute(1, 0, 2, 3).reshape(t, h * n, -1)
    act = ep.actions.permute(1, 0, 2, 3).reshape(t, h * n, -1)
    return obs, act, ep.masks.permute(1, 0, 2).reshape(t, h * n)


def advantages(ep: Episodes, gamma: float, lam: float, horizon: int) -> Tensor:
    """Per-task normalized GAE advantages over a linear baseline, ``[T, H*n]``."""
    returns = discounted_returns(ep.rewards, ep.masks, gamma)
    values = fit_linear_baseline(baseline_features(ep.obs, float(horizon)), returns, ep.masks)
    adv = normalize(gae(ep.rewards, values, ep.masks, gamma, lam), ep.masks, dims=(0, 2))
    h, t, n = adv.shape
    return adv.permute(1, 0, 2).reshape(t, h * n)


def log_probs(policy: GaussianMLPPolicy, params: Params, obs: Tensor, act: Tensor) -> Tensor:
    return policy.distribution(params, obs).log_prob(act).sum(-1)


def vpg_losses(policy: GaussianMLPPolicy, params: Params, ep: Episodes, adv: Tensor) -> Tensor:
    """``[T]`` REINFORCE losses ``-mean(log pi(a|s) * A)`` over each task's steps."""
    obs, act, masks = _flat(ep)
    logp = log_probs(policy, params, obs, act)
    return -(logp * adv * masks).sum(1) / masks.sum(1).clamp_min(1.0)


def adapt_policy(
    mp: MetaPolicy,
    params: Params,
    ep: Episodes,
    adv: Tensor,
    first_order: bool,
    steps: int,
    expand: bool = True,
) -> Params:
    """Per-task adapted policy parameters after ``steps`` VPG steps on ``ep``."""
    tasks = ep.masks.shape[1]

    def losses(fast: Params) -> Tensor:
        return vpg_losses(mp.policy, fast, ep, adv)

    return stacked_sgd(params, mp.inner_lrs(), tasks, losses, steps, first_order, expand)


def act_fn(mp: MetaPolicy, params: Params) -> Any:
    def act(obs: Tensor) -> Tensor:
        return mp.policy.distribution(params, obs).sample()

    return act


def detached(params: Params) -> Params:
    return {n: p.detach() for n, p in params.items()}


class OuterBatch:
    """One meta-iteration's data for the outer update: the inner episodes the policy
    adapts on, the adapted policies' episodes and advantages, and their log-probs
    under the adapted parameters that sampled them (``fast_eval``)."""

    def __init__(
        self, policy: GaussianMLPPolicy, inner_eps: Episodes, inner_adv: Tensor,
        outer_eps: Episodes, outer_adv: Tensor, fast_eval: Params,
    ) -> None:  # fmt: skip
        self.inner_eps, self.inner_adv = inner_eps, inner_adv
        self.outer_adv, self.fast_eval = outer_adv, fast_eval
        self.obs, self.act, self.masks = _flat(outer_eps)
        self.denom = self.masks.sum(1).clamp_min(1.0)
        self.old_logp = log_probs(policy, fast_eval, self.obs, self.act).detach()

    def task_mean(self, values: Tensor) -> Tensor:
        """The mean over tasks of each task's mean over its valid steps."""
        return ((values * self.masks).sum(1) / self.denom).mean()


class MamlRL:
    """One meta-learner: sampling, the inner VPG step and the outer update (clip or TRPO)."""

    def __init__(self, recipe: MetaRLRecipe, sampler: EpisodeSampler, horizon: int) -> None:
        self.recipe = recipe
        self.sampler = sampler
        self.horizon = horizon
        policy = GaussianMLPPolicy(
            sampler.obs_dim, sampler.act_dim, recipe.hidden, "tanh", recipe.init_std
        )
        self.mp = MetaPolicy(policy, recipe.meta)
        self.opt = torch.optim.Adam(self.mp.parameters(), lr=recipe.outer.lr)

    def _adv(self, ep: Episodes) -> Tensor:
        return advantages(ep, self.recipe.gamma, self.recipe.gae_lambda, self.horizon)

    def step(self, tasks: list[Task]) -> dict[str, float]:
        """One meta-iteration on ``tasks``; returns pre/post-adaptation returns and losses."""
        mp = self.mp
        self.sampler.set_tasks(tasks)
        inner_eps = self.sampler.sample(act_fn(mp, detached(mp.params())))
        inner_adv = self._adv(inner_eps)
        fast_eval = self._adapt(inner_eps, inner_adv, first_order=True, create=False)
        outer_eps = self.sampler.sample(act_fn(mp, fast_eval))
        outer_adv = self._adv(outer_eps)
        batch = OuterBatch(mp.policy, inner_eps, inner_adv, outer_eps, outer_adv, fast_eval)
        update = self._trpo_outer if self.recipe.outer.method == "trpo" else self._clip_outer
        return {
            "env_steps": float(inner_eps.masks.sum() + outer_eps.masks.sum()),
            "pre_return": float(inner_eps.episode_returns().mean()),
            "post_return": float(outer_eps.episode_returns().mean()),
            **update(batch),
            "std": float(mp.policy.log_std.detach().exp().mean()),
        }

    def _adapted(self, b: OuterBatch) -> Params:
        """The policies adapted from the current meta-parameters (differentiable)."""
        first_order = self.recipe.meta.algorithm == "fomaml"
        return self._adapt(b.inner_eps, b.inner_adv, first_order=first_order, create=True)

    def _clip_outer(self, b: OuterBatch) -> dict[str, float]:
        """``outer.epochs`` Adam steps on the clipped surrogate."""
        r, mp = self.recipe, self.mp
        loss_value = math.nan
        for _ in range(r.outer.epochs):
            ratio = torch.exp(log_probs(mp.policy, self._adapted(b), b.obs, b.act) - b.old_logp)
            clipped = ratio.clamp(1.0 - r.outer.clip, 1.0 + r.outer.clip)
            surr = torch.minimum(ratio * b.outer_adv, clipped * b.outer_adv)
            loss = -b.task_mean(surr)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise TrainingDivergedError(
                    f"outer loss is {loss_value}; lower outer.lr (now {r.outer.lr}) or "
                    f"meta.inner_lr (now {r.meta.inner_lr})"
                )
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(mp.parameters(), r.outer.max_grad_norm)
            self.opt.step()
        return {"outer_loss": loss_value}

    def _trpo_outer(self, b: OuterBatch) -> dict[str, float]:
        """One trust-region step on the unclipped surrogate of the adapted policies."""
        o, policy = self.recipe.outer, self.mp.policy
        old = policy.distribution(b.fast_eval, b.obs)

        def surrogate() -> Tensor:
            logp = log_probs(policy, self._adapted(b), b.obs, b.act)
            return b.task_mean(torch.exp(logp - b.old_logp) * b.outer_adv)

        def kl() -> Tensor:
            new = policy.distribution(self._adapted(b), b.obs)
            return b.task_mean(kl_divergence(old, new).sum(-1))

        res = trpo_step(
            list(self.mp.parameters()), surrogate, kl, o.max_kl, o.cg_iters, o.cg_damping,
            o.backtrack, o.line_search_steps,
        )  # fmt: skip
        return {"outer_loss": -res.surrogate_after, "kl": res.kl, "step_fraction": res.fraction}

    def pretrain_step(self, tasks: list[Task]) -> dict[str, float]:
        """A multi-task baseline step: the clipped update on pooled tasks, no adaptation."""
        r, mp = self.recipe, self.mp
        self.sampler.set_tasks(tasks)
        params = detached(mp.params())
        eps = self.sampler.sample(act_fn(mp, params))
        adv = self._adv(eps)
        obs, act, masks = _flat(eps)
        old_logp = log_probs(mp.policy, params, obs, act)
        denom = masks.sum(1).clamp_min(1.0)
        for _ in range(r.outer.epochs):
            ratio = torch.exp(log_probs(mp.policy, mp.params(), obs, act) - old_logp)
            clipped = ratio.clamp(1.0 - r.outer.clip, 1.0 + r.outer.clip)
            surr = torch.minimum(ratio * adv, clipped * adv)
            loss = -((surr * masks).sum(1) / denom).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(mp.parameters(), r.outer.max_grad_norm)
            self.opt.step()
        return {"return": float(eps.episode_returns().mean()), "env_steps": float(masks.sum())}

    def adaptation_returns(self, tasks: list[Task], max_steps: int) -> tuple[Tensor, Tensor | None]:
        """Mean episode return (and success rate, where reported) per task
        ``[max_steps + 1, T]`` after 0..max_steps VPG steps. The tasks go through the
        sampler's task slots a batch at a time, so its environments bound the memory."""
        size = self.sampler.num_tasks
        batches = [tasks[i : i + size] for i in range(0, len(tasks), size)]
        parts = [self._adapt_batch(batch, max_steps) for batch in batches]
        returns = torch.cat([r for r, _ in parts], dim=1)
        wins = [w for _, w in parts if w is not None]
        return returns, torch.cat(wins, dim=1) if len(wins) == len(parts) else None

    def _adapt_batch(self, tasks: list[Task], max_steps: int) -> tuple[Tensor, Tensor | None]:
        """:meth:`adaptation_returns` for at most a sampler's worth of tasks (a short
        batch is padded with its own first tasks, whose results are dropped)."""
        k = len(tasks)
        self.sampler.set_tasks(tasks + [tasks[i % k] for i in range(self.sampler.num_tasks - k)])
        params = detached(self.mp.params())
        returns, successes = [], []
        for step in range(max_steps + 1):
            eps = self.sampler.sample(act_fn(self.mp, params))
            returns.append(eps.episode_returns().mean(dim=1))
            won = eps.episode_successes()
            if won is not None:
                successes.append(won.mean(dim=1))
            if step < max_steps:
                leaf = {n: p.requires_grad_(True) for n, p in detached(params).items()}
                fast = adapt_policy(self.mp, leaf, eps, self._adv(eps), True, 1, expand=step == 0)
                params = detached(fast)
        return torch.stack(returns)[:, :k], torch.stack(successes)[:, :k] if successes else None

    @property
    def module(self) -> nn.Module:
        return self.mp

    def checkpoint(self) -> dict[str, Any]:
        return {"meta_policy": self.mp.state_dict(), "optimizer": self.opt.state_dict(),
                "sampler": self.sampler.state_dict()}  # fmt: skip

    def restore(self, state: Mapping[str, Any]) -> None:
        self.mp.load_state_dict(state["meta_policy"])
        self.opt.load_state_dict(state["optimizer"])
        if "sampler" in state:  # runs checkpointed before the sampler's state was kept
            self.sampler.load_state_dict(state["sampler"])

    def close(self) -> None:
        self.sampler.close()

    def _adapt(self, ep: Episodes, adv: Tensor, *, first_order: bool, create: bool) -> Params:
        """Adapted parameters: differentiable to the meta-parameters when ``create``."""
        steps = self.recipe.meta.inner_steps
        if create:
            return adapt_policy(self.mp, self.mp.params(), ep, adv, first_order, steps)
        return detached(adapt_policy(self.mp, self.mp.params(), ep, adv, True, steps))


def build(recipe: MetaRLRecipe, num_tasks: int, episodes: int) -> tuple[MamlRL, TaskFamily]:
    family = meta_family(recipe.env, "MAML-RL")
    horizon = family_horizon(family, recipe.env, recipe.horizon)
    sampler = EpisodeSampler(family, num_tasks, episodes, horizon, recipe.seed, recipe.workers)
    return MamlRL(recipe, sampler, horizon), family


def held_out_results(recipe: MetaRLRecipe, state: Mapping[str, Any]) -> dict[str, Any]:
    """Each held-out task's return and success after ``held_out.steps`` VPG steps, the
    tasks a meta-batch at a time (never more environments than training held)."""
    slots = min(recipe.held_out.tasks, recipe.meta_batch)
    learner, family = build(recipe, slots, recipe.episodes_per_task)
    learner.mp.load_state_dict(state["meta_policy"])
    steps = recipe.held_out.steps
    return held_out_report(recipe, family, learner, lambda t: learner.adaptation_returns(t, steps))


def train_meta_rl(
    recipe: MetaRLRecipe,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = False,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """Meta-train, logging pre/post-adaptation returns; checkpoints resume exactly."""
    family = meta_family(recipe.env, "MAML-RL")  # fails before the run directory is made
    return train_iterations(
        recipe,
        run_dir,
        lambda: build(recipe, recipe.meta_batch, recipe.episodes_per_task)[0],
        lambda rng: family.sample_tasks(recipe.meta_batch, rng),
        resume=resume,
        progress=progress,
        init_from=init_from,
        init_key="meta_policy",
        held_out=(lambda state: held_out_results(recipe, state)) if recipe.held_out.tasks else None,
    )


def load_policy(cfg: Any, state: dict[str, Any]) -> tuple[Any, ActFn]:
    """The trained model and its act function, for ``mtrl.load``."""
    meta, _ = build(cfg, 1, 1)
    meta.sampler.close()
    meta.mp.load_state_dict(state["meta_policy"])
    policy = meta.mp.policy

    @torch.no_grad()
    def act(obs: dict[str, np.ndarray], deterministic: bool) -> np.ndarray:
        o = torch.as_tensor(obs["observation"], dtype=torch.float32)
        if deterministic:  # the meta-learned initial policy, before any adaptation
            return policy(o).numpy()
        return policy.distribution(dict(policy.named_parameters()), o[None]).sample()[0].numpy()

    return meta.mp, act
