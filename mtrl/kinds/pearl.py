"""PEARL (Rakelly et al. 2019): off-policy meta-RL by posterior sampling of a task
latent ``z``.

A fixed set of ``train_tasks`` tasks is drawn from the family (held-out tasks are
later draws from another stream). Each task has an RL replay buffer and a context
buffer. Before the first iteration every task gets ``initial_episodes`` episodes
acting on ``z`` from the prior. Each iteration, for ``tasks_per_iteration`` of the
tasks, the context buffer is emptied and refilled with ``prior_episodes`` episodes on
prior ``z``, then ``posterior_episodes`` more act on ``z`` from the posterior of that
context (they go to the RL buffer only). Then ``train_steps`` gradient steps, each on
``meta_batch`` tasks at once: the posterior of a context batch from the task's
context buffer, a ``z`` drawn from it, SAC's critic loss on an RL batch with the
encoder trained through it plus ``kl_weight`` times the posteriors' KL to the prior
(summed over the batch's tasks, as PEARL's),
and SAC's actor and temperature losses with ``z`` detached.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtrl.config import bounded, check_fields
from mtrl.errors import ConfigError, TrainingDivergedError
from mtrl.kinds.held_out import HeldOutConfig, Outcome, held_out_report
from mtrl.loading import ActFn
from mtrl.loops.iterations import train_iterations
from mtrl.meta.pearl import (
    ContextEncoder,
    LatentActor,
    LatentCritics,
    TaskReplay,
    kl_to_standard_normal,
    sample_z,
    target_entropy,
)
from mtrl.meta.rl_sampler import (
    Episodes,
    EpisodeSampler,
    family_horizon,
    meta_family,
)
from mtrl.tasks import Task, TaskFamily

# what the commands ask of this kind (mtrl.recipes.RecipeKind)
CURVES = ("iteration", ["pre_return", "post_return"])  # `mtrl plot`
EVALUATES = False  # `mtrl adapt` instead
ADAPT = "mtrl.kinds.pearl_adapt:adapt_pearl"


@dataclass(frozen=True)
class PEARLRecipe:
    """`mtrl train` recipe for PEARL on a parametric task family (defaults: PEARL's
    cheetah settings where they fit a CPU; the sizes of a step are the recipe's)."""

    kind: Literal["pearl"] = "pearl"
    seed: int = bounded(0, ge=0)
    env: str = "navigation2d"
    threads: int = bounded(1, ge=0)
    workers: int = bounded(0, ge=0)  # env processes for sampling (0: this one); same episodes
    horizon: int = bounded(0, ge=0)  # 0: the env's registered time limit
    train_tasks: int = bounded(40, ge=2)
    iterations: int = bounded(100, ge=1)
    initial_episodes: int = bounded(2, ge=1)
    tasks_per_iteration: int = bounded(5, ge=1)
    prior_episodes: int = bounded(1, ge=1)
    posterior_episodes: int = bounded(1, ge=0)
    train_steps: int = bounded(100, ge=1)
    meta_batch: int = bounded(16, ge=1)
    context_batch: int = bounded(100, ge=1)
    batch_size: int = bounded(256, ge=1)
    latent: int = 5
    hidden: list[int] = field(default_factory=lambda: [200, 200, 200])
    encoder_hidden: list[int] = field(default_factory=lambda: [200, 200, 200])
    lr: float = bounded(3e-4, gt=0.0)
    gamma: float = bounded(0.99, gt=0.0, lt=1.0)
    tau: float = bounded(0.005, gt=0.0, le=1.0)
    kl_weight: float = bounded(0.1, ge=0.0)
    reward_scale: float = bounded(5.0, gt=0.0)
    init_alpha: float = bounded(1.0, gt=0.0)
    next_obs_in_context: bool = False
    replay_capacity: int = bounded(20_000, ge=1)  # transitions per task
    log_every: int = bounded(1, ge=1)
    checkpoint_every: int = bounded(10, ge=1)
    keep_checkpoints: int = bounded(3, ge=0)
    eval_seed: int = bounded(1_000_003, ge=0)
    held_out: HeldOutConfig = field(default_factory=HeldOutConfig)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.latent < 1:
            raise ConfigError(
                f"latent = {self.latent}: PEARL infers the task as a latent z, and a "
                "latent of no dimensions carries nothing; set latent >= 1 (5 in PEARL)"
            )
        if self.tasks_per_iteration > self.train_tasks or self.meta_batch > self.train_tasks:
            raise ConfigError(
                f"tasks_per_iteration = {self.tasks_per_iteration} and meta_batch = "
                f"{self.meta_batch} must not exceed train_tasks = {self.train_tasks}"
            )
        if any(h < 1 for h in [*self.hidden, *self.encoder_hidden]):
            raise ConfigError("hidden and encoder_hidden layers need >= 1 unit each")


def training_tasks(recipe: PEARLRecipe, family: TaskFamily) -> list[Task]:
    """The run's fixed training tasks (a stream of their own, apart from the held-out
    tasks' and the per-iteration choice's)."""
    rng = np.random.default_rng(np.random.SeedSequence([recipe.seed, 2]))
    every = family.distinct_tasks()
    if every is None:  # continuous parameters: draws do not repeat
        return family.sample_tasks(recipe.train_tasks, rng)
    if recipe.train_tasks > len(every):  # each task keeps its own buffers: no repeats
        raise ConfigError(
            f"train_tasks = {recipe.train_tasks}, but {recipe.env!r} has "
            f"{len(every)} different training tasks: give train_tasks <= {len(every)} "
            "(tasks_per_iteration and meta_batch no more than train_tasks)"
        )
    picks = rng.choice(len(every), size=recipe.train_tasks, replace=False)
    return [every[int(i)] for i in picks]


class Layout:
    """Where each part of a stored transition ``[o, a, r, o', terminal]`` lies."""

    def __init__(self, obs: int, act: int, next_in_context: bool) -> None:
        self.obs, self.act = obs, act
        self.width = 2 * obs + act + 2
        self.context = obs + act + 1 + (obs if next_in_context else 0)
        self._next_in_context = next_in_context

    def rows(self, ep: Episodes, slot: int) -> Tensor:
        """Slot ``slot``'s transitions (steps that happened) as rows."""
        assert ep.next_obs is not None and ep.terminals is not None
        m = ep.masks[:, slot, 0] > 0
        parts = [ep.obs[:, slot, 0], ep.actions[:, slot, 0], ep.rewards[:, slot, 0, None],
                 ep.next_obs[:, slot, 0], ep.terminals[:, slot, 0, None]]  # fmt: skip
        return torch.cat(parts, -1)[m]

    def split(self, rows: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        o, a = self.obs, self.act
        return (rows[..., :o], rows[..., o : o + a], rows[..., o + a],
                rows[..., o + a + 1 : 2 * o + a + 1], rows[..., -1])  # fmt: skip

    def context_of(self, rows: Tensor) -> Tensor:
        """The encoder's input: ``(o, a, r)`` (and ``o'`` when the recipe says)."""
        head = rows[..., : self.obs + self.act + 1]
        if not self._next_in_context:
            return head
        return torch.cat([head, rows[..., self.obs + self.act + 1 : -1]], -1)


class PEARL:
    """The encoder, the latent-conditioned SAC, per-task buffers, and collection."""

    def __init__(self, recipe: PEARLRecipe, family: TaskFamily, tasks: list[Task],
                 slots: int | None = None) -> None:  # fmt: skip
        self.recipe, self.tasks = recipe, tasks
        self.index = {t: i for i, t in enumerate(tasks)}
        if len(self.index) < len(tasks):
            raise ValueError("PEARL's training tasks repeat: each keeps its own buffers")
        horizon = family_horizon(family, recipe.env, recipe.horizon)
        slots = slots or recipe.tasks_per_iteration
        self.sampler = EpisodeSampler(family, slots, 1, horizon, recipe.seed, recipe.workers)
        s = self.sampler
        self.layout = Layout(s.obs_dim, s.act_dim, recipe.next_obs_in_context)
        r, lay = recipe, self.layout
        self.encoder = ContextEncoder(lay.context, r.latent, r.encoder_hidden)
        scale = torch.as_tensor(np.asarray(s.high, dtype=np.float32))
        self.actor = LatentActor(s.obs_dim, s.act_dim, r.latent, r.hidden, scale)
        self.critics = LatentCritics(s.obs_dim, s.act_dim, r.latent, r.hidden)
        self.target = LatentCritics(s.obs_dim, s.act_dim, r.latent, r.hidden)
        self.target.load_state_dict(self.critics.state_dict())
        self.log_alpha = nn.Parameter(torch.tensor(math.log(r.init_alpha)))
        self.nets = nn.ModuleDict({"encoder": self.encoder, "actor": self.actor,
                                   "critics": self.critics, "target": self.target})  # fmt: skip
        self.nets.register_parameter("log_alpha", self.log_alpha)
        critic_params = [*self.critics.parameters(), *self.encoder.parameters()]
        self.opts = {
            "critic": torch.optim.Adam(critic_params, lr=r.lr),
            "actor": torch.optim.Adam(self.actor.parameters(), lr=r.lr),
            "alpha": torch.optim.Adam([self.log_alpha], lr=r.lr),
        }
        n = len(tasks)
        self.replay = TaskReplay(n, r.replay_capacity, lay.width)
        # the context buffer holds one collection's episodes on prior z at most
        episodes = max(r.initial_episodes, r.prior_episodes)
        self.context = TaskReplay(n, episodes * self.sampler.horizon, lay.width)
        self.started = False

    @property
    def module(self) -> nn.Module:
        return self.nets

    # collection ---------------------------------------------------------------
    def collect(self, tasks: list[Task], episodes: int, z: Tensor | None) -> list[Episodes]:
        """``episodes`` episodes on each of ``tasks`` (one slot each), acting on ``z``
        ``[T, latent]`` (None: a fresh prior draw per task and episode)."""
        self.sampler.set_tasks(tasks)
        out = []
        for _ in range(episodes):
            zt = z if z is not None else torch.randn(len(tasks), self.recipe.latent)
            out.append(self.sampler.sample(self._act(zt)))
        return out

    def _act(self, z: Tensor, deterministic: bool = False) -> Any:
        def act(obs: Tensor) -> Tensor:
            zs = z[:, None].expand(*obs.shape[:-1], z.shape[-1])
            return self.actor(obs, zs, deterministic)[0]

        return act

    def store(self, tasks: list[Task], episodes: list[Episodes], *, context: bool) -> None:
        for ep in episodes:
            for slot, task in enumerate(tasks):
                rows = self.layout.rows(ep, slot)
                self.replay.add(self.index[task], rows)
                if context:
                    self.context.add(self.index[task], rows)

    @torch.no_grad()
    def posterior_z(self, context: Tensor) -> Tensor:
        """A draw of ``z`` from the posterior of contexts ``[T, N, width]``."""
        return sample_z(*self.encoder.posterior(self.layout.context_of(context)))

    def _collect_for(self, tasks: list[Task]) -> tuple[float, float, float]:
        """PEARL's per-iteration collection on ``tasks``: mean returns on prior and
        posterior ``z``, and the env steps taken."""
        r = self.recipe
        for t in tasks:
            self.context.clear(self.index[t])
        prior = self.collect(tasks, r.prior_episodes, None)
        self.store(tasks, prior, context=True)
        post_ret, steps = math.nan, float(sum(e.masks.sum() for e in prior))
        if r.posterior_episodes:
            ids = torch.tensor([self.index[t] for t in tasks])
            z = self.posterior_z(self.context.sample(ids, r.context_batch))
            post = self.collect(tasks, r.posterior_episodes, z)
            self.store(tasks, post, context=False)
            post_ret = float(torch.stack([e.episode_returns() for e in post]).mean())
            steps += float(sum(e.masks.sum() for e in post))
        return float(torch.stack([e.episode_returns() for e in prior]).mean()), post_ret, steps

    def _initial(self) -> float:
        """Every training task's first episodes on prior ``z``, in groups of slots (a
        short last group padded with tasks whose episodes are dropped); env steps."""
        size, steps = self.recipe.tasks_per_iteration, 0.0
        for start in range(0, len(self.tasks), size):
            group = self.tasks[start : start + size]
            padded = group + self.tasks[: size - len(group)]
            eps = self.collect(padded, self.recipe.initial_episodes, None)
            steps += float(sum(e.masks.sum() for e in eps))
            self.store(group, [_first_slots(e, len(group)) for e in eps], context=True)
        self.started = True
        return steps

    @torch.no_grad()
    def online_outcome(self, tasks: list[Task], episodes: int, adapt: bool) -> Outcome:
        """Return (and success, where reported) per task ``[episodes, T]``, acting
        deterministically on ``z`` drawn from the posterior of the task's transitions so
        far (``adapt``) or from the prior."""
        lay, latent = self.layout, self.recipe.latent
        self.sampler.set_tasks(tasks)
        seen: list[torch.Tensor] = []  # per episode: [T, H, width] rows and [T, H] masks
        masks: list[torch.Tensor] = []
        out, wins = [], []
        for _ in range(episodes):
            z = torch.randn(len(tasks), latent)
            if adapt and seen:
                context = lay.context_of(torch.cat(seen, 1))
                z = sample_z(*self.encoder.posterior(context, torch.cat(masks, 1)))
            ep = self.sampler.sample(self._act(z, deterministic=True))
            out.append(ep.episode_returns()[:, 0])
            won = ep.episode_successes()
            if won is not None:
                wins.append(won[:, 0])
            assert ep.next_obs is not None and ep.terminals is not None
            parts = [
                ep.obs,
                ep.actions,
                ep.rewards[..., None],
                ep.next_obs,
                ep.terminals[..., None],
            ]
            seen.append(torch.cat(parts, -1)[:, :, 0].transpose(0, 1))
            masks.append(ep.masks[:, :, 0].transpose(0, 1))
        return torch.stack(out), torch.stack(wins) if len(wins) == episodes else None

    # training ---------------------------------------------------------------
    def step(self, tasks: list[Task]) -> dict[str, float]:
        """Collection on ``tasks`` and ``train_steps`` updates; ``pre_return`` is the
        mean return of the episodes on prior ``z``, ``post_return`` on posterior ``z``."""
        initial = 0.0 if self.started else self._initial()
        prior_ret, post_ret, steps = self._collect_for(tasks)
        losses = [self.update() for _ in range(self.recipe.train_steps)]
        mean = {k: float(np.mean([loss[k] for loss in losses])) for k in losses[0]}
        return {"env_steps": initial + steps, "pre_return": prior_ret,
                "post_return": post_ret, **mean}  # fmt: skip

    def update(self) -> dict[str, float]:
        """One gradient step on ``meta_batch`` training tasks at once."""
        r, lay = self.recipe, self.layout
        ids = torch.randperm(len(self.tasks))[: r.meta_batch]
        context = lay.context_of(self.context.sample(ids, r.context_batch))
        o, a, rew, o2, term = lay.split(self.replay.sample(ids, r.batch_size))
        mu, var = self.encoder.posterior(context)
        z = sample_z(mu, var)[:, None].expand(-1, r.batch_size, -1)
        zd, alpha = z.detach(), self.log_alpha.exp().detach()
        with torch.no_grad():
            a2, logp2 = self.actor(o2, zd)
            next_q = self.target(o2, a2, zd).min(0).values - alpha * logp2
            target = r.reward_scale * rew + r.gamma * (1.0 - term) * next_q
        critic_loss = F.mse_loss(self.critics(o, a, z), target.expand(2, -1, -1), reduction="none")
        kl = kl_to_standard_normal(mu, var).sum()  # summed over tasks, as PEARL's
        self._step("critic", critic_loss.mean(0).mean() * 2 + r.kl_weight * kl)
        pi, logp = self.actor(o, zd)
        actor_loss = (alpha * logp - self.critics(o, pi, zd).min(0).values).mean()
        self._step("actor", actor_loss)
        alpha_loss = -(self.log_alpha * (logp.detach() + target_entropy(lay.act)).mean())
        self._step("alpha", alpha_loss)
        with torch.no_grad():
            for p, tp in zip(self.critics.parameters(), self.target.parameters(), strict=True):
                tp.lerp_(p, r.tau)
        return {"critic_loss": float(critic_loss.detach().mean()),
                "actor_loss": float(actor_loss.detach()), "kl": float(kl.detach()),
                "alpha": float(alpha)}  # fmt: skip

    def _step(self, name: str, loss: Tensor) -> None:
        if not torch.isfinite(loss):
            raise TrainingDivergedError(f"PEARL's {name} loss is {float(loss)}; lower lr")
        opt = self.opts[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # the loop's learner protocol ---------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        return {
            "pearl": self.nets.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.opts.items()},
            "replay": self.replay.state_dict(),
            "context": self.context.state_dict(),
            "started": self.started,
            "sampler": self.sampler.state_dict(),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.nets.load_state_dict(state["pearl"])
        for k, o in self.opts.items():
            o.load_state_dict(state["optimizers"][k])
        self.replay.load_state_dict(state["replay"])
        self.context.load_state_dict(state["context"])
        self.started = bool(state["started"])
        if "sampler" in state:  # runs checkpointed before the sampler's state was kept
            self.sampler.load_state_dict(state["sampler"])

    def close(self) -> None:
        self.sampler.close()


def _first_slots(ep: Episodes, n: int) -> Episodes:
    """The episodes of the first ``n`` slots (padding slots dropped)."""
    assert ep.next_obs is not None and ep.terminals is not None
    return Episodes(ep.obs[:, :n], ep.actions[:, :n], ep.rewards[:, :n], ep.masks[:, :n],
                    ep.next_obs[:, :n], ep.terminals[:, :n])  # fmt: skip


def build(recipe: PEARLRecipe, slots: int | None = None) -> tuple[PEARL, TaskFamily]:
    family = meta_family(recipe.env, "PEARL")
    return PEARL(recipe, family, training_tasks(recipe, family), slots), family


def held_out_results(recipe: PEARLRecipe, state: Mapping[str, Any]) -> dict[str, Any]:
    """Each held-out task's return and success in episode ``held_out.steps``, acting on
    ``z`` from the posterior of its earlier episodes."""
    learner, family = build(recipe, slots=recipe.held_out.tasks)
    learner.nets.load_state_dict(state["pearl"])
    episodes = recipe.held_out.steps + 1
    return held_out_report(
        recipe, family, learner, lambda t: learner.online_outcome(t, episodes, True)
    )


def train_pearl(
    recipe: PEARLRecipe,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = False,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """Meta-train PEARL, logging returns on prior and posterior ``z``."""
    family = meta_family(recipe.env, "PEARL")  # fails before the run directory is made
    tasks = training_tasks(recipe, family)

    def draw(rng: np.random.Generator) -> list[Task]:
        return [tasks[i] for i in rng.choice(len(tasks), recipe.tasks_per_iteration, False)]

    return train_iterations(
        recipe,
        run_dir,
        lambda: PEARL(recipe, family, tasks),
        draw,
        resume=resume,
        progress=progress,
        init_from=init_from,
        init_key="pearl",
        held_out=(lambda state: held_out_results(recipe, state)) if recipe.held_out.tasks else None,
    )


def load_policy(cfg: Any, state: dict[str, Any]) -> tuple[Any, ActFn]:
    """The trained networks and, for ``mtrl.load``'s ``act``, the policy on the prior
    mean ``z = 0`` (no context yet); adapt with ``PEARL.posterior_z`` on a context."""
    learner, _ = build(cfg)
    learner.close()
    learner.nets.load_state_dict(state["pearl"])

    @torch.no_grad()
    def act(obs: dict[str, np.ndarray], deterministic: bool) -> np.ndarray:
        o = torch.as_tensor(obs["observation"], dtype=torch.float32)
        z = torch.zeros(*o.shape[:-1], cfg.latent)
        return learner.actor(o, z, deterministic)[0].numpy()

    return learner, act
