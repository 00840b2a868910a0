"""Multi-task PPO with mtrl's task-conditioned networks (`mtrl train`, ``kind = "mtppo"``):
the recipe, and the on-policy loop (:mod:`mtrl.loops.onpolicy`) with PPO's update
(:mod:`mtrl.agents.ppo`), reward normalisation, a curriculum and cloning as components.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from mtrl.agents.hooks import LoopComponent
from mtrl.agents.ppo import ActorCritic, PPOConfig, obs_tensors
from mtrl.agents.reward_norm import CollectedRewardScaling, RewardNorm, make_normalizer
from mtrl.config import bounded, check_fields
from mtrl.curriculum.baselines import build_curriculum
from mtrl.curriculum.config import CurriculumConfig
from mtrl.curriculum.loop import CurriculumProgress
from mtrl.curriculum.schedule import Curriculum
from mtrl.demos.config import PolicyDemosConfig
from mtrl.demos.policy_cloning import PolicyCloning
from mtrl.envs.vector import (
    MultiTaskEnvConfig,
    MultiTaskVecEnv,
    eval_env_config,
    make_multitask_env,
    resolve_tasks,
)
from mtrl.errors import ConfigError
from mtrl.evaluation import evaluate, final_results
from mtrl.loading import ActFn
from mtrl.loops.context import TrainingContext
from mtrl.loops.onpolicy import OnPolicyRun, train_on_policy
from mtrl.seeding import seed_everything
from mtrl.training import capture_loop, check_device, init_weights, restore_loop

__all__ = ["ActorCritic", "MTPPORecipe", "PPOConfig", "load_policy", "train_mtppo"]


# what the commands ask of this kind (mtrl.recipes.RecipeKind)
CURVES = ("step", ["eval_success", "eval_return", "train_return"])  # `mtrl plot`
EVALUATES = True  # a multi-task policy: `mtrl eval` and `mtrl compare` take it


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
    # behaviour cloning of the policy on demonstrations before RL ([demos.bc])
    demos: PolicyDemosConfig | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        if self.env.autoreset_mode != "same_step" or self.env.task_encoding != "index":
            raise ConfigError(
                "mtppo needs env.autoreset_mode = 'same_step' and env.task_encoding = 'index'"
            )


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
        o, tid = obs_tensors(obs, device)
        out = ac.pi(o, tid)
        return ac.env_actions(out.argmax(-1) if ac.discrete else out)

    return act


def _eval(ac: ActorCritic, recipe: MTPPORecipe) -> list[dict[str, Any]]:
    with make_multitask_env(eval_env_config(recipe.env)) as env:
        return evaluate(
            env, policy_fn(ac, env, recipe.device), recipe.eval_episodes, recipe.seed + 1
        )


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


def _components(
    recipe: MTPPORecipe,
    env: MultiTaskVecEnv,
    ac: ActorCritic,
    curriculum: Curriculum | None,
    demos: dict[str, np.ndarray] | None,
    ctx: TrainingContext,
) -> list[LoopComponent]:
    """Cloning before RL, reward normalisation at collection, the curriculum."""
    parts: list[LoopComponent] = []
    if demos is not None and recipe.demos is not None and recipe.demos.bc is not None:
        evaluate = lambda: _eval(ac, recipe)  # noqa: E731
        args = (ctx.log, evaluate, recipe.seed, recipe.device)
        parts.append(PolicyCloning(ac, recipe.demos.bc, demos, *args))
    norm = make_normalizer(recipe.reward_norm, env.num_tasks, env.num_envs, recipe.ppo.gamma)
    if norm is not None:
        parts.append(CollectedRewardScaling(norm))
    if curriculum is not None:
        parts.append(CurriculumProgress(curriculum))
    return parts


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
    d, demos = recipe.demos, None
    if d is not None and not resume:
        # a missing or mismatched dataset fails before the run directory exists
        demos = d.transitions(env, normalize=False)
    ctx = TrainingContext(recipe, run_dir, resume)
    r = OnPolicyRun(
        ac,
        torch.optim.Adam(ac.parameters(), lr=recipe.ppo.lr),
        env,
        recipe.ppo,
        _components(recipe, env, ac, curriculum, demos, ctx),
        lambda: _eval(ac, recipe),
        torch.Generator().manual_seed(recipe.seed),
        recipe.total_steps,
        recipe.eval_every,
        balanced=curriculum is None,
        device=recipe.device,
    )
    elapsed = _restore(ctx.state, r) if ctx.state is not None else 0.0
    ctx.start(
        _checkpoint(ctx, r, recipe),
        total=recipe.total_steps,
        step=r.steps,
        progress=progress,
        elapsed=elapsed,
    )
    steps, rows = train_on_policy(ctx, r, recipe.seed)
    results = {"steps": steps, **final_results(rows)}
    if curriculum is not None:
        results["curriculum"] = curriculum.summary([t.label for t in env.tasks])
    extra = {"init_from": str(init_from)} if init_from is not None else {}
    ctx.finish(results, kind=recipe.kind, env=recipe.env.label, **extra)
    return results


def _checkpoint(ctx: TrainingContext, r: OnPolicyRun, recipe: MTPPORecipe) -> Any:
    def state(step: int) -> dict[str, Any]:
        doc = {
            "actor_critic": r.ac.state_dict(),
            "optimizer": r.opt.state_dict(),
            "generator": r.generator.get_state(),
            "steps": step,
        }
        for c in r.components:
            doc |= c.checkpoint()
        doc["loop"] = capture_loop(r.env, r.obs, ctx.elapsed(), recipe.checkpoint_env)
        return doc

    return state


def _restore(state: dict[str, Any], r: OnPolicyRun) -> float:
    """Continue from a checkpoint; returns the seconds trained before it."""
    r.ac.load_state_dict(state["actor_critic"])
    r.opt.load_state_dict(state["optimizer"])
    r.generator.set_state(state["generator"])
    r.steps = int(state["steps"])
    for c in r.components:
        c.restore(state)
    if state.get("loop") is None:
        return 0.0
    r.obs = restore_loop(state["loop"], r.env)  # exact continuation
    return float(state["loop"]["elapsed"])


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
