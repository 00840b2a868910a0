"""The multi-task vector env: N sub-envs bound to tasks, task ids in obs and infos."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from mtrl.config import bounded
from mtrl.envs.metaworld_suites import RewardVersion
from mtrl.envs.registry import get_family, make_task_env
from mtrl.envs.wrappers import TaskEncoding, TaskEpisodeStats, TaskIdentity
from mtrl.errors import ConfigError
from mtrl.tasks import Split, Task

Vectorization = Literal["sync", "async"]
AutoresetName = Literal["next_step", "same_step", "disabled"]
_AUTORESET = {
    "next_step": AutoresetMode.NEXT_STEP,
    "same_step": AutoresetMode.SAME_STEP,
    "disabled": AutoresetMode.DISABLED,
}


@dataclass(frozen=True)
class MultiTaskEnvConfig:
    """Which tasks to run and how to vectorize them (the ``[env]`` table of a recipe)."""

    name: str = "MT10"
    split: Split = "train"
    num_tasks: int | None = None  # first N of the split; all when absent
    envs_per_task: int = bounded(1, ge=1, le=64)
    vectorization: Vectorization = "sync"
    autoreset_mode: AutoresetName = "same_step"
    task_encoding: TaskEncoding = "index"
    reward_version: RewardVersion = "v2"  # Meta-World reward function version
    task_seed: int = bounded(0, ge=0)  # which tasks (goal sets, sampled parameters)

    def __post_init__(self) -> None:
        if self.num_tasks is not None and self.num_tasks < 1:
            raise ValueError(f"num_tasks = {self.num_tasks} must be >= 1 (or absent for all)")


def _make_sub_env(
    task: Task, task_index: int, num_tasks: int, encoding: TaskEncoding, env_kwargs: dict[str, Any]
) -> gym.Env[Any, Any]:
    env = make_task_env(task, **env_kwargs)
    env = TaskEpisodeStats(env, task_index)
    return TaskIdentity(env, task_index, num_tasks, encoding)


class MultiTaskVecEnv(gym.vector.VectorWrapper):
    """A gymnasium vector env whose sub-env ``i`` runs ``tasks[task_ids[i]]``.

    Sub-envs of one task are adjacent (task-sorted), so per-task batches are slices.
    Finished episodes are collected per task; :meth:`episode_statistics` summarises them.
    """

    def __init__(
        self, env: gym.vector.VectorEnv, tasks: Sequence[Task], task_ids: np.ndarray
    ) -> None:
        super().__init__(env)
        self.single_observation_space = _union_space(env.observation_space, env.num_envs)
        self.tasks = list(tasks)
        self.task_ids = task_ids
        self._episodes: dict[int, list[tuple[float, int, float]]] = defaultdict(list)

    @classmethod
    def from_tasks(
        cls,
        tasks: Sequence[Task],
        *,
        envs_per_task: int = 1,
        vectorization: Vectorization = "sync",
        autoreset_mode: AutoresetName = "same_step",
        task_encoding: TaskEncoding = "index",
        env_kwargs: dict[str, Any] | None = None,
    ) -> MultiTaskVecEnv:
        if not tasks:
            raise ValueError("a multi-task vector env needs at least one task")
        if envs_per_task < 1:
            raise ValueError(f"envs_per_task must be >= 1, got {envs_per_task}")
        kwargs = dict(env_kwargs or {})
        task_ids = np.repeat(np.arange(len(tasks)), envs_per_task)
        fns = [
            functools.partial(_make_sub_env, tasks[i], i, len(tasks), task_encoding, kwargs)
            for i in task_ids.tolist()
        ]
        if autoreset_mode not in _AUTORESET:
            raise ValueError(
                f"autoreset_mode must be one of {sorted(_AUTORESET)}, got {autoreset_mode!r}"
            )
        mode = _AUTORESET[autoreset_mode]
        vec: gym.vector.VectorEnv
        if vectorization == "sync":
            # Meta-World classes declare different goal bounds: batch them per env.
            vec = gym.vector.SyncVectorEnv(fns, autoreset_mode=mode, observation_mode="different")
        elif vectorization == "async":
            vec = gym.vector.AsyncVectorEnv(
                fns, autoreset_mode=mode, context="spawn", observation_mode="different"
            )
        else:
            raise ValueError(f"vectorization must be 'sync' or 'async', got {vectorization!r}")
        return cls(vec, tasks, task_ids)

    def __enter__(self) -> MultiTaskVecEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        # Same-step autoreset moves the last step's info of finished envs to "final_info".
        self._collect(infos.get("final_info", infos))
        return obs, rewards, terminations, truncations, infos

    def _collect(self, infos: dict[str, Any]) -> None:
        done = infos.get("_episode")
        if done is None or not done.any():
            return
        ep = infos["episode"]
        for i in np.flatnonzero(done):
            self._episodes[int(ep["task_id"][i])].append(
                (float(ep["r"][i]), int(ep["l"][i]), float(ep["success"][i]))
            )

    def episode_counts(self) -> list[int]:
        """Finished episodes per task since the statistics were last cleared."""
        return [len(self._episodes.get(t, [])) for t in range(self.num_tasks)]

    def episode_statistics(
        self, clear: bool = True, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Per task: episodes finished, mean return, mean length, success rate (NaN if
        none), over the first ``limit`` episodes of each task when given."""
        rows = []
        for tid, task in enumerate(self.tasks):
            eps = np.array(self._episodes.get(tid, [])[:limit], dtype=np.float64).reshape(-1, 3)
            rows.append(
                {
                    "task_id": tid,
                    "task": task.label,
                    "episodes": len(eps),
                    "return": float(eps[:, 0].mean()) if len(eps) else float("nan"),
                    "length": float(eps[:, 1].mean()) if len(eps) else float("nan"),
                    "success": float(eps[:, 2].mean()) if len(eps) else float("nan"),
                }
            )
        if clear:
            self._episodes.clear()
        return rows


def _union_space(batched: gym.Space[Any], n: int) -> gym.Space[Any]:
    """The single-env space covering every sub-env of a batched space."""
    if isinstance(batched, spaces.Dict):
        return spaces.Dict({k: _union_space(v, n) for k, v in batched.spaces.items()})
    if isinstance(batched, spaces.Box):
        return spaces.Box(batched.low.min(axis=0), batched.high.max(axis=0), dtype=batched.dtype)
    if isinstance(batched, spaces.MultiDiscrete):
        return spaces.Discrete(int(batched.nvec.max()))
    raise TypeError(f"unsupported batched observation space {batched}")


def make_multitask_env(cfg: MultiTaskEnvConfig) -> MultiTaskVecEnv:
    """Build the multi-task vector env a config describes."""
    family = get_family(cfg.name)
    tasks = family.tasks(cfg.split, seed=cfg.task_seed)
    if not tasks:
        raise ConfigError(f"{cfg.name} has no {cfg.split} tasks; use split = 'train'")
    if cfg.num_tasks is not None:
        if cfg.num_tasks > len(tasks):
            raise ConfigError(
                f"num_tasks = {cfg.num_tasks} but {cfg.name} has {len(tasks)} {cfg.split} tasks"
            )
        tasks = tasks[: cfg.num_tasks]
    env_kwargs: dict[str, Any] = {}
    if tasks[0].family == "metaworld":
        env_kwargs["reward_function_version"] = cfg.reward_version
    return MultiTaskVecEnv.from_tasks(
        tasks,
        envs_per_task=cfg.envs_per_task,
        vectorization=cfg.vectorization,
        autoreset_mode=cfg.autoreset_mode,
        task_encoding=cfg.task_encoding,
        env_kwargs=env_kwargs,
    )
