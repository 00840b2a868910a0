"""Wrappers: task identity in observations, per-task episode statistics, task resampling."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mtrl.tasks import Task, TaskFamily, TaskSettable

TaskEncoding = Literal["index", "onehot", "concat"]


EPISODE_KEY = "task_episode"  # gymnasium's RecordEpisodeStatistics owns info["episode"]


Wrapper = gym.Wrapper[Any, Any, Any, Any]


def wrapped_by(env: gym.Env[Any, Any], wrapper_class: type[Wrapper]) -> bool:
    """Whether ``env`` or any wrapper inside it is an instance of ``wrapper_class``."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, wrapper_class):
            return True
        env = env.env
    return False


class TaskIdentity(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """Expose the task identity to the policy and in ``info["task_id"]``.

    ``encoding="index"``: Dict obs ``{"observation", "task_id": Discrete(num_tasks)}``
    (SB3's ``MultiInputPolicy`` one-hot encodes the Discrete part itself);
    ``"onehot"``: Dict obs ``{"observation", "task_onehot": Box(0, 1, (num_tasks,))}``;
    ``"concat"``: a flat Box, the observation followed by the one-hot.
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        task_index: int,
        num_tasks: int,
        encoding: TaskEncoding = "index",
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, task_index=task_index, num_tasks=num_tasks, encoding=encoding
        )
        gym.Wrapper.__init__(self, env)
        if not 0 <= task_index < num_tasks:
            raise ValueError(f"task_index {task_index} must be in [0, {num_tasks})")
        base = env.observation_space
        if not isinstance(base, spaces.Box):
            raise TypeError(f"TaskIdentity needs a Box observation space, got {base}")
        self.task_index = task_index
        self.num_tasks = num_tasks
        self.encoding = encoding
        self._onehot = np.zeros(num_tasks, dtype=base.dtype)
        self._onehot[task_index] = 1
        onehot_space = spaces.Box(0, 1, shape=(num_tasks,), dtype=base.dtype)
        if encoding == "index":
            self.observation_space = spaces.Dict(
                {"observation": base, "task_id": spaces.Discrete(num_tasks)}
            )
        elif encoding == "onehot":
            self.observation_space = spaces.Dict({"observation": base, "task_onehot": onehot_space})
        elif encoding == "concat":
            self.observation_space = spaces.Box(
                np.concatenate([base.low, onehot_space.low]),
                np.concatenate([base.high, onehot_space.high]),
                dtype=base.dtype,
            )
        else:
            raise ValueError(f"encoding must be 'index', 'onehot' or 'concat', got {encoding!r}")

    def is_wrapped(self, wrapper_class: type[Wrapper]) -> bool:
        """Whether this env or a wrapper inside it is a ``wrapper_class`` (SB3's
        ``env_is_wrapped``; callable in a worker process through ``call``)."""
        return wrapped_by(self, wrapper_class)

    def set_task_index(self, task_index: int) -> None:
        """Report another task of the same list (a sub-env re-bound between episodes)."""
        if not 0 <= task_index < self.num_tasks:
            raise ValueError(f"task_index {task_index} must be in [0, {self.num_tasks})")
        self.task_index = task_index
        self._onehot = np.zeros_like(self._onehot)
        self._onehot[task_index] = 1

    def _encode(self, obs: np.ndarray) -> Any:
        if self.encoding == "index":
            return {"observation": obs, "task_id": self.task_index}
        if self.encoding == "onehot":
            return {"observation": obs, "task_onehot": self._onehot.copy()}
        return np.concatenate([obs, self._onehot])

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        info["task_id"] = self.task_index
        return self._encode(obs), info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["task_id"] = self.task_index
        return self._encode(obs), reward, terminated, truncated, info


class TaskEpisodeStats(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """At each episode's end, ``info["task_episode"]`` holds return ``r``, length ``l``, wall
    time ``t``, ``success`` (1 if ``info["success"]`` was ever true, as in Meta-World's
    protocol; NaN where the env reports no success) and ``task_id``."""

    def __init__(self, env: gym.Env[Any, Any], task_index: int = 0) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, task_index=task_index)
        gym.Wrapper.__init__(self, env)
        self.task_index = task_index
        self._ret = 0.0
        self._len = 0
        self._success = np.nan
        self._start = time.perf_counter()

    def set_task_index(self, task_index: int) -> None:
        self.task_index = task_index

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._ret, self._len, self._success = 0.0, 0, np.nan
        self._start = time.perf_counter()
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._ret += float(reward)
        self._len += 1
        if "success" in info:
            self._success = max(
                0.0 if np.isnan(self._success) else self._success, float(info["success"])
            )
        if terminated or truncated:
            info[EPISODE_KEY] = {
                "r": self._ret,
                "l": self._len,
                "t": round(time.perf_counter() - self._start, 6),
                "success": self._success,
                "task_id": self.task_index,
            }
        return obs, reward, terminated, truncated, info


class TaskResampling(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """Sets a new task at every reset (meta-RL): drawn from ``tasks`` if given, else
    sampled from ``family``; the draw is reproducible from ``reset(seed=...)``."""

    def __init__(
        self,
        env: gym.Env[Any, Any],
        family: TaskFamily | None = None,
        tasks: Sequence[Task] | None = None,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, family=family, tasks=tasks)
        gym.Wrapper.__init__(self, env)
        if (family is None) == (tasks is None):
            raise ValueError("TaskResampling takes exactly one of family= or tasks=")
        if tasks is not None and not tasks:
            raise ValueError("TaskResampling got an empty task list")
        if not isinstance(env.unwrapped, TaskSettable):
            raise TypeError(f"{type(env.unwrapped).__name__} cannot change task (no set_task)")
        self._family = family
        self._tasks = list(tasks) if tasks is not None else None
        self._rng = np.random.default_rng()
        self.task: Task | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        if self._tasks is not None:
            task = self._tasks[int(self._rng.integers(len(self._tasks)))]
        else:
            assert self._family is not None
            task = self._family.sample_tasks(1, self._rng)[0]
        inner = self.env.unwrapped
        assert isinstance(inner, TaskSettable)
        inner.set_task(task)
        self.task = task
        obs, info = self.env.reset(seed=seed, options=options)
        info["task"] = task.name
        return obs, info
