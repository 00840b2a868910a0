"""`mtrl train` for ``kind = "mtsac"``: multi-task SAC on a multi-task vector env."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from mtrl.agents.hooks import LoopComponent
from mtrl.agents.replay import TaskReplayBuffer
from mtrl.agents.resets import ResetConfig
from mtrl.agents.reward_norm import ReplayRewardScaling, RewardNorm, make_normalizer
from mtrl.agents.sac import MTSAC, SACConfig
from mtrl.config import bounded, check_fields
from mtrl.curriculum.baselines import build_curriculum
from mtrl.curriculum.config import CurriculumConfig
from mtrl.curriculum.loop import CurriculumProgress, TaskSwitches
from mtrl.curriculum.methods import ContinualConfig, ContinualMethod
from mtrl.curriculum.schedule import Curriculum
from mtrl.demos.config import DemosConfig
from mtrl.demos.dagger import teacher_policy
from mtrl.demos.dataset import success_rewards
from mtrl.demos.proposal import CloneProposal
from mtrl.demos.replay import DemoReplay
from mtrl.demos.setup import DemoSetup
from mtrl.demos.warm_start import WarmStart
from mtrl.envs.vector import (
    MultiTaskEnvConfig,
    MultiTaskVecEnv,
    eval_env_config,
    make_multitask_env,
    resolve_tasks,
)
from mtrl.errors import ConfigError
from mtrl.evaluation import evaluate, final_results
from mtrl.loading import ActFn, load
from mtrl.loops.context import TrainingContext
from mtrl.loops.offpolicy import OffPolicyRun, Schedule, train_off_policy
from mtrl.runs import RunDir
from mtrl.seeding import seed_everything
from mtrl.training import capture_loop, check_device, init_weights, restore_loop

# what the commands ask of this kind (mtrl.recipes.RecipeKind)
CURVES = ("step", ["eval_success", "eval_return", "train_return"])  # `mtrl plot`
EVALUATES = True  # a multi-task policy: `mtrl eval` and `mtrl compare` take it


@dataclass(frozen=True)
class Plan:
    """What a kind adds to the SAC loop beside a :class:`SACRun`'s fields."""

    curriculum: CurriculumConfig | None = None  # the curriculum the loop consults
    continual: ContinualConfig | None = None  # a continual-learning method in the update
    steps_per_task: int | None = None  # the budget per task (else the run's total_steps)
    # results a kind adds to the summary (continual: Continual World's metrics)
    results: Callable[[RunDir], dict[str, Any]] | None = None

    def budget(self, recipe: Any, num_tasks: int) -> int:
        """Env steps a run of ``recipe`` takes in all (at most, with ``stop_on_mastery``)."""
        if self.steps_per_task is not None:
            return self.steps_per_task * num_tasks
        return int(recipe.total_steps)


@dataclass(frozen=True)
class SACRun:
    """What every SAC recipe has: environment, budget, replay, the SAC update,
    demonstrations and reward scaling. A kind composes it with its own fields and a
    :class:`Plan` (``kind = "mtsac"``: a curriculum; ``"continual"``: a task sequence and
    a continual-learning method)."""

    kind: str = "mtsac"
    seed: int = bounded(0, ge=0)
    device: str = "cpu"
    threads: int = bounded(0, ge=0)
    env: MultiTaskEnvConfig = field(default_factory=MultiTaskEnvConfig)
    total_steps: int = bounded(100_000, ge=1)  # environment steps, all sub-envs together
    learning_starts: int = bounded(1_000, ge=0)  # random actions before the first update
    batch_size: int = bounded(256, ge=1)  # a multiple of the number of tasks
    updates_per_step: float = bounded(1.0, gt=0.0)  # gradient updates per vector-env step
    buffer_capacity: int = bounded(100_000, ge=1)  # transitions per task
    eval_every: int = bounded(10_000, ge=1)  # environment steps
    eval_episodes: int = bounded(3, ge=1)  # per task
    log_every: int = bounded(1_000, ge=1)
    checkpoint_every: int = bounded(50_000, ge=1)
    checkpoint_buffer: bool = True  # large buffers (MT10 at 1M) make big checkpoints
    checkpoint_env: bool = True  # sync envs' state, for exact resume (Meta-World: ~0.3 MB/env)
    keep_checkpoints: int = bounded(3, ge=0)  # newest checkpoints kept; 0 keeps all
    sac: SACConfig = field(default_factory=SACConfig)
    demos: DemosConfig | None = None  # behaviour cloning on demonstrations before RL
    resets: ResetConfig | None = None  # networks re-drawn every so many env steps
    # "return_std": each task's rewards scaled by its running return spread (tasks of
    # several families pay on different scales; mtrl.agents.reward_norm)
    reward_norm: RewardNorm = "none"

    def __post_init__(self) -> None:
        check_fields(self)
        if self.demos is not None and self.demos.sqil is not None and self.reward_norm != "none":
            raise ConfigError(
                "[demos.sqil] replaces the rewards by 1 (demonstrations) and 0; "
                "reward_norm would rescale them by the environment's returns; set "
                "reward_norm = 'none'"
            )
        if self.env.autoreset_mode != "same_step":
            raise ConfigError("mtsac needs env.autoreset_mode = 'same_step'")
        if self.env.task_encoding != "index":
            raise ConfigError(
                "mtsac conditions its networks on task ids: leave env.task_encoding = 'index'"
            )

    def plan(self) -> Plan:
        """What the kind adds to the loop (nothing here)."""
        return Plan()


@dataclass(frozen=True)
class MTSACRecipe(SACRun):
    """Multi-task SAC: a :class:`SACRun`, with an optional curriculum."""

    kind: Literal["mtsac"] = "mtsac"
    curriculum: CurriculumConfig | None = None

    def plan(self) -> Plan:
        return Plan(curriculum=self.curriculum)


def _obs(obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(obs["observation"], dtype=np.float32), np.asarray(obs["task_id"])


class ActionScaler:
    """Maps the actor's [-1, 1] actions to the env's Box bounds."""

    def __init__(self, space: gym.Space[Any]) -> None:
        if not isinstance(space, gym.spaces.Box):
            raise ConfigError(f"SAC needs continuous (Box) actions, got {space}")
        if not np.all(np.isfinite(space.low)) or not np.all(np.isfinite(space.high)):
            raise ConfigError("SAC needs a bounded (finite) Box action space")
        self.low, self.high = space.low, space.high

    def __call__(self, a: np.ndarray) -> np.ndarray:
        return self.low + (a + 1.0) * 0.5 * (self.high - self.low)


def make_agent(recipe: SACRun, env: MultiTaskVecEnv, balanced: bool = True) -> MTSAC:
    space = env.single_observation_space
    if not isinstance(space, gym.spaces.Dict) or "observation" not in space.spaces:
        raise ConfigError("mtsac needs the multi-task env's Dict observations (task ids)")
    obs_space = space["observation"]
    act_space = env.single_action_space
    if not isinstance(act_space, gym.spaces.Box):
        raise ConfigError(f"SAC needs continuous (Box) actions; {recipe.env.label} has {act_space}")
    if balanced and recipe.batch_size % env.num_tasks:
        raise ConfigError(
            f"batch_size = {recipe.batch_size} must be a multiple of the {env.num_tasks} tasks "
            "(batches are balanced across tasks)"
        )
    obs_dim = int(np.prod(obs_space.shape or (1,)))
    act_dim = int(np.prod(act_space.shape))
    return MTSAC(recipe.sac, obs_dim, act_dim, env.num_tasks).to(recipe.device)


def load_agent(recipe: SACRun, plan: Plan, env: MultiTaskVecEnv, state: dict[str, Any]) -> MTSAC:
    """A trained agent from a checkpoint, with what acts in it: its continual method
    (PackNet's masks decide which weights act for each task) and the IBRL clone."""
    agent = make_agent(recipe, env, balanced=plan.curriculum is None)
    agent.load_state_dict(state["agent"])
    if plan.continual is not None:
        agent.extension = method = ContinualMethod(plan.continual, agent, recipe.seed)
        if state.get("method") is not None:
            method.load_state_dict(state["method"])
    for term in _demo_components(recipe, agent, None, None, env.num_envs):
        if isinstance(term, CloneProposal) and state.get("proposal"):
            term.load_state_dict(state["proposal"])
    return agent


def policy_fn(agent: MTSAC, env: MultiTaskVecEnv, device: str, deterministic: bool) -> Any:
    scale = ActionScaler(env.single_action_space)

    @torch.no_grad()
    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        o, tid = _obs(obs)
        a = agent.act(
            torch.as_tensor(o, device=device), torch.as_tensor(tid, device=device), deterministic
        )
        return scale(a.cpu().numpy())

    return act


def evaluate_agent(agent: MTSAC, recipe: SACRun, episodes: int, seed: int) -> list[dict[str, Any]]:
    with make_multitask_env(eval_env_config(recipe.env)) as env:
        return evaluate(env, policy_fn(agent, env, recipe.device, True), episodes, seed)


def train_mtsac(
    recipe: MTSACRecipe,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = False,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """Train, evaluating every ``eval_every`` env steps; checkpoints resume the run.
    ``init_from`` (a run directory or checkpoint) gives the networks' starting weights.
    With ``recipe.curriculum`` the sub-envs run the tasks it unlocks and picks."""
    return train_sac(recipe, recipe.plan(), run_dir, resume, progress, init_from)


def train_sac(
    recipe: SACRun,
    plan: Plan,
    run_dir: str | Path,
    resume: bool = False,
    progress: bool = False,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """The SAC loop on ``recipe`` with what ``plan`` adds: a curriculum (a continual
    sequence is one) whose tasks the sub-envs run, and a continual method that adds its
    penalty to the update and consolidates at every task switch."""
    check_device(recipe.device)
    curriculum = None
    if plan.curriculum is not None:  # bad curriculum settings fail before the run dir exists
        num_tasks = len(resolve_tasks(recipe.env))
        curriculum = build_curriculum(plan.curriculum, recipe.env, num_tasks, recipe.seed)
    with make_multitask_env(recipe.env, scheduler=curriculum) as env:
        return _train(recipe, plan, env, run_dir, resume, progress, curriculum, init_from)


def _demo_data(
    recipe: SACRun, env: MultiTaskVecEnv
) -> tuple[dict[str, np.ndarray] | None, DemoReplay | None]:
    """The demonstrations a recipe's techniques read (a missing or mismatched dataset
    fails before the run directory exists), relabelled with the env's success reward
    where the recipe uses it, SQIL's rewards of 1 applied."""
    d = recipe.demos
    if d is None:
        return None, None
    demos = d.transitions(env)
    if recipe.env.reward_version == "success":  # the env's sparse reward on demo steps too
        demos["reward"] = success_rewards(demos, d.dataset)
    if d.sqil is not None:
        demos["reward"] = np.ones_like(demos["reward"])
    return demos, DemoReplay(demos, env.num_tasks, recipe.device)


def _demo_components(
    recipe: SACRun,
    agent: MTSAC,
    replay: DemoReplay | None,
    gen: torch.Generator | None,
    num_envs: int,
) -> list[LoopComponent]:
    """The demonstration techniques' components, built in one order for training and
    loading (update terms wrap the agent's extension: a continual method innermost).
    Without demonstrations, as when loading, only what acting needs."""
    d = recipe.demos
    if d is None:
        return []
    sqil = d.sqil is not None
    args = (recipe.batch_size, recipe.learning_starts, num_envs, sqil)
    return d.build(DemoSetup(agent, replay, gen, *args))


def _components(
    recipe: SACRun,
    plan: Plan,
    env: MultiTaskVecEnv,
    agent: MTSAC,
    curriculum: Curriculum | None,
    method: ContinualMethod | None,
    data: tuple[dict[str, np.ndarray] | None, DemoReplay | None],
    gen: torch.Generator,
    ctx: TrainingContext,
) -> list[LoopComponent]:
    """Everything optional of a recipe, in the order the loop consults it."""
    (demos, replay), parts = data, list[LoopComponent]()
    if method is not None:
        agent.extension = method
    if method is not None and curriculum is not None:
        per_task = plan.budget(recipe, 1)
        parts.append(TaskSwitches(method, curriculum, agent, env.num_tasks, per_task))
    parts += _demo_components(recipe, agent, replay, gen, env.num_envs)
    phases = recipe.demos.phases() if recipe.demos is not None else None
    if demos is not None and phases is not None and (phases.bc or phases.critic):
        proposal = next((p for p in parts if isinstance(p, CloneProposal)), None)
        parts.append(_warm_start(recipe, agent, demos, replay, proposal, ctx))
    norm = make_normalizer(recipe.reward_norm, env.num_tasks, env.num_envs, recipe.sac.gamma)
    if norm is not None:
        parts.append(ReplayRewardScaling(norm))
    if curriculum is not None:
        parts.append(CurriculumProgress(curriculum))
    if recipe.resets is not None:
        parts.append(recipe.resets.build(agent, recipe.learning_starts))
    return parts


def _warm_start(
    recipe: SACRun,
    agent: MTSAC,
    demos: dict[str, np.ndarray],
    replay: DemoReplay | None,
    proposal: CloneProposal | None,
    ctx: TrainingContext,
) -> WarmStart:
    d = recipe.demos
    assert d is not None
    phases = d.phases()

    def rollouts() -> tuple[Any, Any, Any]:
        assert phases.dagger is not None
        env = make_multitask_env(eval_env_config(recipe.env))
        teacher = teacher_policy(phases.dagger.teacher, env, recipe.env.label, load)
        return env, teacher, policy_fn(agent, env, recipe.device, True)  # the actor's

    def evaluate() -> list[dict[str, Any]]:
        return evaluate_agent(agent, recipe, recipe.eval_episodes, recipe.seed + 1)

    dagger = rollouts if phases.dagger is not None else None
    args = (ctx.log, evaluate, dagger, recipe.seed, recipe.batch_size, recipe.device)
    return WarmStart(agent, phases, demos, replay, proposal, *args, recipe.learning_starts)


def _checkpoint(ctx: TrainingContext, r: OffPolicyRun, recipe: SACRun) -> Any:
    """What a checkpoint holds: networks, optimisers, replay, streams, counters, the
    env's state and every component's entries."""

    def state(step: int) -> dict[str, Any]:
        doc = {
            "agent": r.agent.state_dict(),
            "optimizers": r.agent.optimizer_state(),
            "buffer": r.buffer.state() if recipe.checkpoint_buffer else None,
            "generator": r.generator.get_state(),
            "steps": step,
        }
        for c in r.components:
            doc |= c.checkpoint()
        doc["loop"] = capture_loop(
            r.env,
            r.obs,
            ctx.elapsed(),
            recipe.checkpoint_env,
            r.rng,
            updates=r.updates,
            credit=r.credit,
            last=dict(r.last or {}),
        )
        return doc

    return state


def _restore(state: dict[str, Any], r: OffPolicyRun) -> float:
    """Continue from a checkpoint; returns the seconds trained before it."""
    r.agent.load_state_dict(state["agent"])
    r.agent.load_optimizer_state(state["optimizers"])
    if state.get("buffer") is not None:
        r.buffer.load_state(state["buffer"])
    r.generator.set_state(state["generator"])
    r.steps = int(state["steps"])
    for c in r.components:
        c.restore(state)
    loop = state.get("loop")
    if loop is None:
        return 0.0
    r.obs = restore_loop(loop, r.env, r.rng)  # RNG streams, counters, env state
    r.updates, r.credit, r.last = loop["updates"], loop["credit"], dict(loop["last"])
    return float(loop["elapsed"])


def _train(
    recipe: SACRun,
    plan: Plan,
    env: MultiTaskVecEnv,
    run_dir: str | Path,
    resume: bool,
    progress: bool,
    curriculum: Curriculum | None,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    seed_everything(recipe.seed)  # network initialisation is part of the seeded run
    agent = make_agent(recipe, env, balanced=curriculum is None)
    if not resume:
        init_weights(agent, init_from, "agent")  # before the run dir: a misfit fails first
    continual = plan.continual
    method = ContinualMethod(continual, agent, recipe.seed) if continual is not None else None
    data = _demo_data(recipe, env)
    if recipe.demos is not None and recipe.demos.dagger is not None:  # a bad teacher fails here
        teacher_policy(recipe.demos.dagger.teacher, env, recipe.env.label, load)
    ctx = TrainingContext(recipe, run_dir, resume)
    obs_dim, act_dim = agent.actor.net.in_dim, agent.actor.net.out_dim // 2
    cap = recipe.buffer_capacity
    buffer = TaskReplayBuffer(env.num_tasks, cap, obs_dim, act_dim, device=recipe.device)
    gen = torch.Generator().manual_seed(recipe.seed)
    schedule = _schedule(recipe, plan, env.num_tasks, curriculum is not None)
    r = OffPolicyRun(
        agent,
        env,
        buffer,
        schedule,
        _components(recipe, plan, env, agent, curriculum, method, data, gen, ctx),
        ActionScaler(env.single_action_space),
        lambda: evaluate_agent(agent, recipe, recipe.eval_episodes, recipe.seed + 1),
        gen,
        np.random.default_rng(recipe.seed),
        recipe.device,
    )
    elapsed = _restore(ctx.state, r) if ctx.state is not None else 0.0
    ctx.start(
        _checkpoint(ctx, r, recipe),
        total=schedule.total_steps,
        step=r.steps,
        progress=progress,
        elapsed=elapsed,
    )
    steps, rows = train_off_policy(ctx, r, recipe.seed)
    results = {"steps": steps, "updates": r.updates, **final_results(rows)}
    if curriculum is not None:
        results["curriculum"] = curriculum.summary([t.label for t in env.tasks])
    if plan.results is not None:
        results.update(plan.results(ctx.run))
    _finish(ctx, recipe, results, init_from)
    return results


def _schedule(recipe: SACRun, plan: Plan, num_tasks: int, partial_tasks: bool) -> Schedule:
    """When the loop acts, updates, logs and evaluates (a curriculum's batches may hold
    only the tasks it has unlocked)."""
    return Schedule(
        plan.budget(recipe, num_tasks),
        recipe.learning_starts,
        recipe.batch_size,
        recipe.updates_per_step,
        recipe.log_every,
        recipe.eval_every,
        partial_tasks=partial_tasks,
    )


def _finish(
    ctx: TrainingContext, recipe: SACRun, results: dict[str, Any], init_from: str | Path | None
) -> None:
    """The run's summary: its results and what it trained on."""
    extra = {"init_from": str(init_from)} if init_from is not None else {}
    ctx.finish(
        results,
        kind=recipe.kind,
        env=recipe.env.label,
        metaworld_reward_version=recipe.env.reward_version,
        **extra,
    )


def load_policy(cfg: Any, state: dict[str, Any]) -> tuple[Any, ActFn]:
    """The trained model and its act function, for ``mtrl.load``."""
    env = make_multitask_env(eval_env_config(cfg.env))  # spaces and task count
    try:
        agent = load_agent(cfg, cfg.plan(), env, state)
        fns = {d: policy_fn(agent, env, cfg.device, d) for d in (True, False)}
    finally:
        env.close()
    return agent, lambda obs, d: fns[d](obs)
