"""Score bounds for return-based mastery: a random policy's return, the target's."""

from __future__ import annotations

from mtrl.curriculum.config import CurriculumConfig
from mtrl.curriculum.schedule import Curriculum
from mtrl.envs.policies import random_policy
from mtrl.envs.rollout import rollout
from mtrl.envs.vector import MultiTaskEnvConfig, eval_env_config, make_multitask_env


def random_returns(env: MultiTaskEnvConfig, episodes: int, seed: int) -> list[float]:
    """Mean return of uniformly random actions on each task of ``env`` (one sub-env
    per task, ``episodes`` each, seeded)."""
    with make_multitask_env(eval_env_config(env)) as vec:
        rows = rollout(vec, random_policy(vec.action_space, seed), episodes, seed=seed)
    return [float(r["return"]) for r in rows]


def build_curriculum(
    config: CurriculumConfig, env: MultiTaskEnvConfig, num_tasks: int, seed: int
) -> Curriculum:
    """The curriculum of a run, with its score bounds measured where not given."""
    bounds = None
    if config.mastery_metric == "return":
        target = config.per_task(config.target_return, num_tasks, "target_return")
        if config.random_return is not None:
            low = config.per_task(config.random_return, num_tasks, "random_return")
        else:
            low = random_returns(env, config.random_episodes, seed)
        bounds = list(zip(low, target, strict=True))
    return Curriculum(config, num_tasks, seed, score_bounds=bounds)
