"""Policies for rolling out multi-task vector envs without an agent: random and
Meta-World's own scripted experts (the reference for adapter correctness)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from mtrl.errors import MtrlError
from mtrl.tasks import Task

VecPolicy = Callable[[Any], np.ndarray]


def _flat_obs(obs: Any) -> np.ndarray:
    return np.asarray(obs["observation"] if isinstance(obs, dict) else obs)


def random_policy(action_space: gym.Space[Any], seed: int) -> VecPolicy:
    """Uniform random actions from the (batched) action space, seeded."""
    action_space.seed(seed)
    return lambda obs: np.asarray(action_space.sample())


def expert_policy(env: Any) -> VecPolicy:
    """Meta-World's scripted experts for a multi-task env's sub-envs; other families
    have none (the error says to pass a trained run)."""
    if env.tasks[0].family != "metaworld":
        raise MtrlError(
            f"--policy expert needs a Meta-World suite (scripted experts); for "
            f"{env.tasks[0].family}, pass a trained run: --policy RUN_DIR"
        )
    return metaworld_expert_policy(env.tasks, env.task_ids)


def metaworld_expert_policy(tasks: Sequence[Task], task_ids: np.ndarray) -> VecPolicy:
    """Meta-World's scripted expert for each sub-env's task (MT suites: goal visible)."""
    from metaworld.policies import ENV_POLICY_MAP

    names = [str(t.as_dict().get("env_name", "")) for t in tasks]
    missing = [n for n in names if n not in ENV_POLICY_MAP]
    if missing:
        raise MtrlError(f"no Meta-World expert policy for {missing}; use --policy random")
    experts = [ENV_POLICY_MAP[names[i]]() for i in task_ids.tolist()]  # type: ignore[abstract]

    def act(obs: Any) -> np.ndarray:
        flat = _flat_obs(obs)
        with warnings.catch_warnings():  # the experts' gains exceed 1 by design; env clips
            warnings.filterwarnings("ignore", "Constant\\(s\\) may be too high", UserWarning)
            # a copy each: some experts (door-open) shift the observation given in place
            actions = [p.get_action(flat[i].copy()) for i, p in enumerate(experts)]
        return np.stack(actions).astype(np.float32)

    return act
