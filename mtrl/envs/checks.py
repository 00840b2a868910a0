"""`mtrl envs check`: gymnasium's env checker plus same-seed determinism, per family."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.utils.env_checker import check_env

from mtrl.envs.registry import get_family
from mtrl.tasks import TaskFamily

DEFAULT_CHECK_NAMES = (
    "cartpole",
    "cartpole-goal",
    "pendulum",
    "navigation2d",
    "halfcheetah-vel",
    "halfcheetah-dir",
    "ant-dir",
    "ant-goal",
    "hopper-params",
    "walker2d-params",
    "MT1:reach-v3",
    "ML1:reach-v3",
    "MT10",
    "ML10",
    "CW10",
)


@dataclass(frozen=True)
class CheckResult:
    name: str
    task: str
    env_checker: str  # "ok" or the failure message
    determinism: str
    task_sampling: str

    @property
    def ok(self) -> bool:
        return self.env_checker == self.determinism == self.task_sampling == "ok"


def rollout_signature(family: TaskFamily, seed: int, steps: int = 60) -> list[Any]:
    """Observations and rewards of a seeded random rollout (fresh env, first train task)."""
    env = family.make_env(family.tasks("train", seed=0)[0])
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    trace: list[Any] = [np.asarray(obs).copy()]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        trace += [np.asarray(obs).copy(), float(reward)]
        if terminated or truncated:
            obs, _ = env.reset()
            trace.append(np.asarray(obs).copy())
    env.close()
    return trace


def _same(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def check_family(name: str, seed: int = 0) -> CheckResult:
    """Run gymnasium's checker on one env of ``name`` and the determinism checks."""
    family = get_family(name)
    task = family.tasks("train", seed=0)[0]
    env = family.make_env(task)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # style warnings (e.g. infinite bounds) are not failures
            check_env(env.unwrapped, skip_render_check=True)
        checker = "ok"
    except Exception as exc:  # report every failure, do not stop at the first family
        checker = f"{type(exc).__name__}: {exc}"
    finally:
        env.close()
    same = _same(rollout_signature(family, seed), rollout_signature(family, seed))
    a = family.sample_tasks(3, np.random.default_rng(seed))
    b = family.sample_tasks(3, np.random.default_rng(seed))
    return CheckResult(
        name=name,
        task=task.label,
        env_checker=checker,
        determinism="ok" if same else "same seed gave different trajectories",
        task_sampling="ok" if a == b else "same seed gave different tasks",
    )
