"""Multi-task PPO with mtrl's task-conditioned networks (`mtrl train`, ``kind = "mtppo"``).

Rollouts of ``n_steps`` on every sub-env of the multi-task vector env; GAE across
episode boundaries (time-limit truncation bootstraps from the final observation);
clipped-surrogate epochs over task-balanced, task-sorted minibatches, so per-task
layers run as one ``bmm`` and per-task losses feed the optional gradient balancing.
Box actions use a Gaussian policy (clipped to the bounds in the env), Discrete
actions a categorical one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Normal

from mtrl.agents.balancing import balanced_step
from mtrl.agents.reward_norm import RewardNorm, make_normalizer
from mtrl.agents.sac import per_task_mean
from mtrl.config import bounded, check_fields
from mtrl.curriculum.baselines import build_curriculum
from mtrl.curriculum.config import CurriculumConfig
from mtrl.curriculum.schedule import Curriculum
from mtrl.demos.config import DemosConfig
from mtrl.envs.vector import (
    MultiTaskEnvConfig,
    MultiTaskVecEnv,
    eval_env_config,
    make_multitask_env,
    resolve_tasks,
)
from mtrl.errors import ConfigError, TrainingDivergedError
from mtrl.evaluation import eval_metrics, evaluate, summarize
from mtrl.loading import ActFn
from mtrl.nets import MultiTaskNet, NetConfig
from mtrl.returns import gae_continuing
from mtrl.seeding import seed_everything
from mtrl.training import (
    Checkpointer,
    InterruptGuard,
    capture_loop,
    check_device,
    divergence_advice,
    init_weights,
    open_run,
    progress_bar,
    restore_loop,
    resume_state,
)


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


@dataclass(frozen=True)
class MTPPORecipe:
    kind: Literal["mtppo"] = "mtppo"
    seed: int = bounded(0, ge=0)
    device: str = "cpu"
    threads: int = bounded(0, ge=0)
    env: MultiTaskEnvConfig = field(default_factory=lambda: MultiTaskEnvConfig(name="cartpole"))
    total_steps: int = bounded(100_000, ge=1)
    eval_episodes: int = bounded(5, ge=1)
    eval_every: int = bounded(50_000, ge=1)
    checkpoint_every: int = bounded(50_000, ge=1)
    checkpoint_env: bool = True  # sync envs' state, for exact resume
    keep_checkpoints: int = bounded(3, ge=0)  # newest checkpoints kept; 0 keeps all
    ppo: PPOConfig = field(default_factory=PPOConfig)
    curriculum: CurriculumConfig | None = None
    # "return_std": each task's rewards scaled by its running return spread as they are
    # collected (tasks of several families pay on different scales)
    reward_norm: RewardNorm = "none"
    # behaviour cloning of the policy on demonstrations before RL (demos.bc_steps)
    demos: DemosConfig | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        if self.env.autoreset_mode != "same_step" or self.env.task_encoding != "index":
            raise ConfigError(
                "mtppo needs env.autoreset_mode = 'same_step' and env.task_encoding = 'index'"
            )
        d = self.demos
        sac_only = ["critic_steps", "replay_share", "bc_weight", "clone_proposal"]
        sac_only += ["conservative_weight", "self_imitation", "dagger_rounds"]
        if d is not None and any(getattr(d, name) for name in sac_only):
            raise ConfigError(
                "mtppo takes demos.bc_steps (behaviour-cloning initialisation) only; "
                f"demos.{', '.join(sac_only)} are MT-SAC's (kind = 'mtsac')"
            )


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


def make_actor_critic(recipe: MTPPORecipe, env: MultiTaskVecEnv) -> ActorCritic:
    space = env.single_observation_space
    if not isinstance(space, gym.spaces.Dict):
        raise ConfigError("mtppo needs the multi-task env's Dict observations (task ids)")
    obs_dim = int(np.prod(space["observation"].shape or (1,)))
    return ActorCritic(recipe.ppo, obs_dim, env.single_action_space, env.num_tasks).to(
        recipe.device
    )


def policy_fn(ac: ActorCritic, env: MultiTaskVecEnv, device: str) -> Any:
    """Deterministic actions (mode of the distribution) for evaluation."""

    @torch.no_grad()
    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        o, tid = _obs(obs, device)
        out = ac.pi(o, tid)
        return ac.env_actions(out.argmax(-1) if ac.discrete else out)

    return act


def _eval(ac: ActorCritic, recipe: MTPPORecipe) -> list[dict[str, Any]]:
    with make_multitask_env(eval_env_config(recipe.env)) as env:
        return evaluate(
            env, policy_fn(ac, env, recipe.device), recipe.eval_episodes, recipe.seed + 1
        )


def _behaviour_cloning(
    ac: ActorCritic, demos: dict[str, np.ndarray], cfg: DemosConfig, recipe: MTPPORecipe, run: Any
) -> None:
    """BC initialisation: the policy cloned on the demonstrations (seeded; logged as
    ``bc_loss`` rows). Box actions: ``demos.bc_loss`` of the Gaussian ("mse" fits the
    mean, "nll" also the per-task spread); Discrete: the actions' cross-entropy."""
    from mtrl.demos.bc import clone, gaussian_bc_loss

    dev = recipe.device
    o = torch.as_tensor(demos["obs"], dtype=torch.float32, device=dev)
    o = o.reshape(o.shape[0], -1)
    t = torch.as_tensor(demos["task_id"], dtype=torch.long, device=dev)
    a = torch.as_tensor(demos["action"], device=dev)

    def batch_loss(idx: Tensor) -> Tensor:
        out = ac.pi(o[idx], t[idx])
        if ac.discrete:
            return nn.functional.cross_entropy(out, a[idx].long().reshape(-1))
        act = a[idx].float().reshape(out.shape)
        return gaussian_bc_loss(cfg.bc_loss, act, out, ac.log_std[t[idx]]).mean()

    params = [*ac.pi.parameters(), ac.log_std]
    clone(params, batch_loss, demos["task_id"], cfg, recipe.seed + 17, dev, run.log_metrics)


def _shuffled_minibatches(task_ids: Tensor, minibatches: int, gen: torch.Generator) -> list[Tensor]:
    """Random index sets, each sorted by task (a curriculum's rollouts hold tasks in
    any proportion, and some not at all)."""
    perm = torch.randperm(len(task_ids), generator=gen)
    size = len(perm) // minibatches
    if size < 1:
        raise ConfigError("too few samples for the minibatches; raise ppo.n_steps")
    parts = [perm[i * size : (i + 1) * size] for i in range(minibatches)]
    return [p[torch.argsort(task_ids[p], stable=True)] for p in parts]


def _balanced_minibatches(
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


def train_mtppo(
    recipe: MTPPORecipe,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = False,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """Train multi-task PPO; checkpoints resume the networks, optimizer and step count.
    With ``recipe.curriculum`` the sub-envs run the tasks it unlocks and picks."""
    check_device(recipe.device)
    curriculum = None
    if recipe.curriculum is not None:  # bad settings fail before the run dir exists
        num_tasks = len(resolve_tasks(recipe.env))
        curriculum = build_curriculum(recipe.curriculum, recipe.env, num_tasks, recipe.seed)
    with make_multitask_env(recipe.env, scheduler=curriculum) as env:
        return _train(recipe, env, run_dir, resume, progress, curriculum, init_from)


def _train(
    recipe: MTPPORecipe,
    env: MultiTaskVecEnv,
    run_dir: str | Path,
    resume: bool,
    progress: bool,
    curriculum: Curriculum | None = None,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    seed_everything(recipe.seed)  # network initialisation is part of the seeded run
    ac = make_actor_critic(recipe, env)
    if not resume:
        init_weights(ac, init_from, "actor_critic")
    dcfg = recipe.demos
    demos = None
    if dcfg is not None and dcfg.bc_steps and not resume:
        from mtrl.demos.dataset import demo_transitions

        # a missing or mismatched dataset fails before the run directory exists
        demos = demo_transitions(
            dcfg.dataset, dcfg.root, env, dcfg.episodes_per_task, normalize=False
        )
    run = open_run(recipe, run_dir, resume)
    if demos is not None and dcfg is not None:
        _behaviour_cloning(ac, demos, dcfg, recipe, run)
    cfg, dev = recipe.ppo, recipe.device
    opt = torch.optim.Adam(ac.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(recipe.seed)
    norm = make_normalizer(recipe.reward_norm, env.num_tasks, env.num_envs, cfg.gamma)
    steps, elapsed = 0, 0.0
    obs: Any = None
    state = resume_state(run, resume)
    if state is not None:
        ac.load_state_dict(state["actor_critic"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        steps = int(state["steps"])
        if curriculum is not None:
            curriculum.load_state_dict(state["curriculum"])
        if norm is not None:
            norm.load_state_dict(state["reward_norm"])
        if state.get("loop") is not None:  # exact continuation
            obs = restore_loop(state["loop"], env)
            elapsed = float(state["loop"]["elapsed"])
    n = env.num_envs
    if obs is None:
        obs, _ = env.reset(seed=recipe.seed + steps)
    next_eval = (steps // recipe.eval_every + 1) * recipe.eval_every
    rows: list[dict[str, Any]] = []
    ckpt = Checkpointer(
        run,
        recipe.checkpoint_every,
        recipe.total_steps,
        steps,
        lambda step: {
            "actor_critic": ac.state_dict(),
            "optimizer": opt.state_dict(),
            "generator": gen.get_state(),
            "steps": step,
            "curriculum": curriculum.state_dict() if curriculum is not None else None,
            "reward_norm": norm.state_dict() if norm is not None else None,
            "loop": capture_loop(
                env, obs, elapsed + time.perf_counter() - t0, recipe.checkpoint_env
            ),
        },
        keep=recipe.keep_checkpoints or None,
    )

    def finished() -> bool:
        if steps >= recipe.total_steps:
            return True
        return bool(
            curriculum is not None and curriculum.config.stop_on_mastery and curriculum.finished
        )

    bar = progress_bar(progress, recipe.total_steps, steps, "env steps", "step", run)
    t0 = time.perf_counter()
    if demos is not None:  # the clone's success (BC alone), then where a resume starts
        run.log_metrics(eval_metrics(_eval(ac, recipe), steps))
        ckpt.save(steps)
    guard = InterruptGuard()
    try:
        guard.__enter__()
        while not finished():
            guard.check()  # Ctrl-C stops between rollouts, never inside one
            o_buf, a_buf, lp_buf, v_buf, r_buf, d_buf, t_buf = [], [], [], [], [], [], []
            for _ in range(cfg.n_steps):
                o, tid = _obs(obs, dev)
                with torch.no_grad():
                    d = ac.dist(o, tid)
                    a = d.sample()
                    lp, v = ac.log_prob(d, a), ac.value(o, tid)
                ran = np.asarray(obs["task_id"])  # the tasks this step's rewards belong to
                obs, rew, term, trunc, info = env.step(ac.env_actions(a))
                if norm is not None:
                    norm.observe(rew, np.logical_or(term, trunc), ran)
                    rew = norm.normalize(rew, ran)
                rew_t = torch.as_tensor(rew, dtype=torch.float32, device=dev)
                truncated = np.flatnonzero(np.logical_and(trunc, ~term))
                if truncated.size:  # bootstrap time limits from the final observation
                    finals = {
                        "observation": np.stack(
                            [info["final_obs"][i]["observation"] for i in truncated]
                        ),
                        # the finished episode's task (a curriculum may re-bind the env)
                        "task_id": np.asarray(info["final_info"]["task_id"])[truncated],
                    }
                    fo, ftid = _obs(finals, dev)
                    with torch.no_grad():
                        rew_t[truncated] += cfg.gamma * ac.value(fo, ftid)
                o_buf.append(o)
                t_buf.append(tid)
                a_buf.append(a)
                lp_buf.append(lp)
                v_buf.append(v)
                r_buf.append(rew_t)
                d_buf.append(torch.as_tensor(np.logical_or(term, trunc), dtype=torch.float32))
                steps += n
                if bar is not None:
                    bar.update(n)
            with torch.no_grad():
                last_v = ac.value(*_obs(obs, dev))
            values = torch.stack(v_buf)
            adv = gae_continuing(
                torch.stack(r_buf),
                values,
                torch.stack(d_buf).to(dev),
                last_v,
                cfg.gamma,
                cfg.gae_lambda,
            )
            returns = adv + values
            flat_o = torch.cat(o_buf)
            flat_t = torch.cat(t_buf)
            present = int(torch.unique(flat_t).numel())
            flat_a, flat_lp = torch.cat(a_buf), torch.cat(lp_buf)
            flat_adv, flat_ret = adv.reshape(-1), returns.reshape(-1)
            losses_seen = []
            for _ in range(cfg.epochs):
                batches = (
                    _balanced_minibatches(flat_t, env.num_tasks, cfg.minibatches, gen)
                    if curriculum is None
                    else _shuffled_minibatches(flat_t, cfg.minibatches, gen)
                )
                for idx in batches:
                    tid = flat_t[idx]
                    d = ac.dist(flat_o[idx], tid)
                    ratio = torch.exp(ac.log_prob(d, flat_a[idx]) - flat_lp[idx])
                    a_n = flat_adv[idx]
                    a_n = (a_n - a_n.mean()) / (a_n.std() + 1e-8)
                    surr = torch.minimum(ratio * a_n, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * a_n)
                    v_loss = (ac.value(flat_o[idx], tid) - flat_ret[idx]) ** 2
                    per_sample = -surr + cfg.value_coef * v_loss - cfg.entropy_coef * ac.entropy(d)
                    task_losses = per_task_mean(per_sample, tid, env.num_tasks)
                    if present < env.num_tasks:  # mean over the tasks the rollout holds
                        task_losses = task_losses * (env.num_tasks / present)
                    reg = ac.pi.regularization() + ac.v.regularization()
                    if not torch.isfinite(task_losses).all():
                        raise TrainingDivergedError(
                            f"non-finite PPO loss at env step {steps}; "
                            + divergence_advice(run, f"ppo.lr (now {cfg.lr})")
                        )
                    balanced_step(
                        opt,
                        list(ac.parameters()),
                        task_losses,
                        reg,
                        cfg.balancing,
                        cfg.cagrad_c,
                        cfg.max_grad_norm,
                    )
                    losses_seen.append(float(task_losses.mean().detach()))
            stats = [r for r in env.episode_statistics(clear=True) if r["episodes"]]
            row: dict[str, Any] = {
                "step": steps,
                "loss": float(np.mean(losses_seen)),
                "env_steps_per_s": steps / max(elapsed + time.perf_counter() - t0, 1e-9),
            }
            if stats:
                row["train_return"] = float(np.mean([r["return"] for r in stats]))
                for r in stats:
                    row[f"return/{r['task_id']}"] = r["return"]
            if curriculum is not None:
                row["tasks_unlocked"] = int(curriculum.unlocked.sum())
                row["tasks_mastered"] = int((curriculum.mastered_at >= 0).sum())
            run.log_metrics(row)
            if steps >= next_eval or finished():
                rows = _eval(ac, recipe)
                run.log_metrics(eval_metrics(rows, steps))
                next_eval += recipe.eval_every
            ckpt.step(steps)
    except KeyboardInterrupt:
        ckpt.save(steps)
        raise
    finally:
        guard.__exit__(None, None, None)
        if bar is not None:
            bar.close()
    ckpt.save(steps)
    if not rows:
        rows = _eval(ac, recipe)
    agg = summarize(rows)
    results = {
        "steps": steps,
        "per_task": rows,
        "aggregate": agg,
        "mean_return": agg["return"].get("mean"),
        "mean_success": agg["success"].get("mean"),
    }
    if curriculum is not None:
        results["curriculum"] = curriculum.summary([t.label for t in env.tasks])
    run.write_summary(
        seed=recipe.seed,
        results=results,
        kind=recipe.kind,
        env=recipe.env.label,
        **({"init_from": str(init_from)} if init_from is not None else {}),
    )
    return results


def load_policy(cfg: Any, state: dict[str, Any]) -> tuple[Any, ActFn]:
    """The trained model and its act function, for ``mtrl.load``."""
    env = make_multitask_env(eval_env_config(cfg.env))
    try:
        ac = make_actor_critic(cfg, env)
    finally:
        env.close()
    ac.load_state_dict(state["actor_critic"])
    mode = policy_fn(ac, env, cfg.device)

    @torch.no_grad()
    def act(obs: dict[str, np.ndarray], deterministic: bool) -> np.ndarray:
        if deterministic:
            return np.asarray(mode(obs))
        o = torch.as_tensor(obs["observation"], device=cfg.device)
        t = torch.as_tensor(obs["task_id"], device=cfg.device)
        return np.asarray(ac.env_actions(ac.dist(o, t).sample()))

    return ac, act
