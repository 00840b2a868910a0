"""Roll a policy through a multi-task vector env until every task has N episodes."""

from __future__ import annotations

from typing import Any

from gymnasium.vector import AutoresetMode

from mtrl.envs.policies import VecPolicy
from mtrl.envs.vector import MultiTaskVecEnv
from mtrl.errors import ConfigError


def rollout(
    env: MultiTaskVecEnv,
    policy: VecPolicy,
    episodes_per_task: int,
    seed: int,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Per-task statistics (return, length, success) over the first ``episodes_per_task``
    episodes of each task (tasks that finish early keep running until all are done; with
    one sub-env per task, as in evaluation, these are consecutive episodes)."""
    if episodes_per_task < 1:
        raise ValueError(f"episodes_per_task must be >= 1, got {episodes_per_task}")
    if env.metadata.get("autoreset_mode") == AutoresetMode.DISABLED:
        raise ConfigError(
            "rollout needs sub-envs that reset themselves; use autoreset_mode "
            "'same_step' or 'next_step' instead of 'disabled'"
        )
    env.episode_statistics(clear=True)
    obs, _ = env.reset(seed=seed)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=episodes_per_task * env.num_tasks, desc="episodes", unit="ep")
    done = 0
    while True:
        obs, *_ = env.step(policy(obs))
        counts = env.episode_counts()
        finished = sum(min(c, episodes_per_task) for c in counts)
        if bar is not None and finished > done:
            bar.update(finished - done)
        done = finished
        if min(counts) >= episodes_per_task:
            break
    if bar is not None:
        bar.close()
    return env.episode_statistics(clear=True, limit=episodes_per_task)
