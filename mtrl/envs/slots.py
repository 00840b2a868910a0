"""Sub-envs that change task between episodes, as a curriculum decides.

:class:`TaskPool` is one environment that can run any task of a list: tasks of a
family with ``set_task`` share one env; tasks that need a different env class (each
Meta-World environment) get their own member env, built on first use, and inactive
members are not stepped; an episode of a task the scheduler has retired ends at
once (truncated). :class:`TaskSlot` wraps a pool with the task identity and
episode statistics wrappers, asks a :class:`TaskScheduler` for the task of each new
episode and reports finished episodes back to it (the vector env reports steps).
Task ids stay those of the full list, so per-task statistics, heads and temperatures
stay attached to their task whichever sub-env runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mtrl.envs.mixture import MixtureLayout, make_member_env
from mtrl.envs.wrappers import EPISODE_KEY, wrapped_by
from mtrl.errors import ConfigError
from mtrl.tasks import Task, TaskSettable


class TaskScheduler(Protocol):
    """What a sub-env asks and tells at episode boundaries (see mtrl.curriculum)."""

    def next_task(self, slot: int) -> int: ...

    def record_steps(self, task_ids: np.ndarray) -> None: ...

    def record_episode(
        self, task: int, episode_return: float, success: float, length: int = 0
    ) -> None: ...

    def retired(self, task: int) -> bool: ...


def pool_key(task: Task) -> str:
    """Tasks with the same key run in one env via ``set_task``."""
    return str(task.as_dict().get("env_name", task.family))


class TaskPool(gym.Env[Any, Any]):
    """Runs any of ``tasks``: :meth:`set_task` picks the member env for the next reset."""

    def __init__(
        self,
        tasks: Sequence[Task],
        initial: int = 0,
        env_kwargs: dict[str, Any] | None = None,
        layout: MixtureLayout | None = None,
        family_ids: Sequence[int] | None = None,
    ) -> None:
        self.tasks = list(tasks)
        self._kwargs = dict(env_kwargs or {})
        self._layout = layout
        self._family = list(family_ids) if family_ids is not None else [0] * len(self.tasks)
        self._members: dict[str, gym.Env[Any, Any]] = {}
        self._rng = np.random.default_rng(0)
        self._task = self.tasks[initial]
        self.retired: Callable[[], bool] = _never  # end the episode now
        self._active = self._member(self._task)
        first = self._active.observation_space
        assert isinstance(first, spaces.Box)
        if len({pool_key(t) for t in self.tasks}) == 1:
            self.observation_space = first
        else:  # several env classes: bounds differ per class, shapes must not
            self.observation_space = spaces.Box(-np.inf, np.inf, first.shape, first.dtype)
        self.action_space = self._active.action_space
        self.metadata = dict(self._active.metadata)
        self.render_mode = self._kwargs.get("render_mode")

    def _member(self, task: Task) -> gym.Env[Any, Any]:
        key = pool_key(task)
        env = self._members.get(key)
        if env is None:
            family = self._family[self.tasks.index(task)]
            env = make_member_env(task, self._kwargs, self._layout, family)
            if self._members:
                shape = self._active.observation_space.shape
                if env.observation_space.shape != shape:
                    raise ConfigError(
                        f"task {task.label} observes {env.observation_space.shape} but "
                        f"{self._task.label} observes {shape}: one curriculum needs one "
                        "observation shape"
                    )
                env.reset(seed=int(self._rng.integers(2**31)))  # seeded on first use
            self._members[key] = env
        else:
            inner = env.unwrapped
            assert isinstance(inner, TaskSettable)
            inner.set_task(task)
        return env

    def set_task(self, task: Task) -> None:
        self._active = self._member(task)
        self._task = task

    def get_task(self) -> Task:
        return self._task

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)  # gymnasium's contract (np_random); the members have their own
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        return self._active.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._active.step(action)
        if not (terminated or truncated) and self.retired():
            truncated = True  # the task's turn is over (a sequence moved on)
        return obs, reward, terminated, truncated, info

    def render(self) -> Any:
        return self._active.render()

    def close(self) -> None:
        for env in self._members.values():
            env.close()


def _never() -> bool:
    return False


class TaskSlot(gym.Wrapper[Any, Any, Any, Any]):
    """Sub-env ``slot``: asks the scheduler for each episode's task and reports back."""

    def __init__(
        self, env: gym.Env[Any, Any], pool: TaskPool, slot: int, scheduler: TaskScheduler
    ) -> None:
        super().__init__(env)
        self.pool, self.slot, self.scheduler = pool, slot, scheduler
        self.task_index = pool.tasks.index(pool.get_task())
        pool.retired = self._retired  # a bound method: snapshots pickle it

    def is_wrapped(self, wrapper_class: type[gym.Wrapper[Any, Any, Any, Any]]) -> bool:
        """Whether this slot or a wrapper inside it is a ``wrapper_class``."""
        return wrapped_by(self, wrapper_class)

    def _retired(self) -> bool:
        return bool(self.scheduler.retired(self.task_index))

    def bind(self, task_index: int) -> None:
        """Run ``tasks[task_index]`` from the next reset on."""
        if task_index != self.task_index:
            self.pool.set_task(self.pool.tasks[task_index])
            env: gym.Env[Any, Any] = self.env
            while isinstance(env, gym.Wrapper):
                setter = getattr(env, "set_task_index", None)
                if setter is not None:
                    setter(task_index)
                env = env.env
            self.task_index = task_index

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.bind(self.scheduler.next_task(self.slot))
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        episode = info.get(EPISODE_KEY)
        if episode is not None:
            self.scheduler.record_episode(
                self.task_index, float(episode["r"]), float(episode["success"]), int(episode["l"])
            )
        return obs, reward, terminated, truncated, info
