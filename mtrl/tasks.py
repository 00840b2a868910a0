"""Tasks and task families.

A :class:`Task` is a named, hashable set of parameters of one family. A
:class:`TaskFamily` samples tasks with a seeded RNG, builds environments and sets a
task on them, and gives fixed train/test task lists (sampled from disjoint seed
streams for parametric families, or the benchmark's own split for Meta-World).
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from mtrl.errors import MtrlError

Split = Literal["train", "test"]
ParamValue = float | int | str | tuple[float, ...]


def _freeze(value: Any) -> ParamValue:
    if isinstance(value, np.ndarray | list | tuple):
        return tuple(float(v) for v in np.asarray(value, dtype=np.float64).ravel())
    if isinstance(value, np.floating | float):
        return float(value)
    if isinstance(value, np.integer | int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"task parameter values must be numbers, strings or arrays, got {value!r}")


def _fmt(value: ParamValue) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple) and len(value) <= 3:
        return "(" + ",".join(f"{v:.4g}" for v in value) + ")"
    if isinstance(value, tuple):
        digest = hashlib.sha1(repr(value).encode()).hexdigest()[:8]
        return f"<{len(value)}:{digest}>"
    return str(value)


@dataclass(frozen=True)
class Task:
    """A named, hashable set of parameters of a task family."""

    family: str
    params: tuple[tuple[str, ParamValue], ...]

    @classmethod
    def make(cls, family: str, params: Mapping[str, Any]) -> Task:
        return cls(family, tuple((k, _freeze(v)) for k, v in params.items()))

    @property
    def name(self) -> str:
        inner = ",".join(f"{k}={_fmt(v)}" for k, v in self.params)
        return f"{self.family}[{inner}]"

    @property
    def label(self) -> str:
        """A short display name: the environment name where there is one, else ``name``."""
        params = dict(self.params)
        if "env_name" in params:
            goal = params.get("goal", -1)
            return (
                f"{params['env_name']}#{goal}"
                if isinstance(goal, int) and goal >= 0
                else str(params["env_name"])
            )
        return self.name

    def __getitem__(self, key: str) -> ParamValue:
        for k, v in self.params:
            if k == key:
                return v
        raise KeyError(f"task {self.name} has no parameter {key!r}")

    def as_dict(self) -> dict[str, ParamValue]:
        return dict(self.params)

    def __str__(self) -> str:
        return self.name


def as_float(value: ParamValue) -> float:
    """A scalar task parameter as float (a clear error for strings or vectors)."""
    if isinstance(value, int | float):
        return float(value)
    raise TypeError(f"expected a scalar task parameter, got {value!r}")


def as_int(value: ParamValue) -> int:
    if isinstance(value, int):
        return value
    raise TypeError(f"expected an integer task parameter, got {value!r}")


class TaskMismatchError(MtrlError, ValueError):
    """A task of one family was given to an environment of another."""


@runtime_checkable
class TaskSettable(Protocol):
    """An environment whose task can be changed in place (between episodes)."""

    def set_task(self, task: Task) -> None: ...

    def get_task(self) -> Task: ...


class TaskEnvMixin:
    """Gives an env ``set_task``/``get_task`` with a family check; subclasses apply params."""

    family_name: str = ""
    _task: Task

    def set_task(self, task: Task) -> None:
        if not isinstance(task, Task) or task.family != self.family_name:
            got = task.family if isinstance(task, Task) else type(task).__name__
            raise TaskMismatchError(
                f"{type(self).__name__} takes tasks of family {self.family_name!r}, got {got!r}; "
                f"sample tasks with mtrl.envs.get_family({self.family_name!r})"
            )
        self._apply_task(task.as_dict())
        self._task = task

    def get_task(self) -> Task:
        return self._task

    def _apply_task(self, params: dict[str, ParamValue]) -> None:
        raise NotImplementedError


def _split_rng(seed: int, split: Split) -> np.random.Generator:
    # Disjoint streams so train and test tasks never coincide for the same seed.
    return np.random.default_rng(np.random.SeedSequence([seed, 0 if split == "train" else 1]))


class TaskFamily(abc.ABC):
    """A family of related tasks sharing one environment class."""

    name: str
    env_id: str
    description: str
    num_train: int
    num_test: int

    @abc.abstractmethod
    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """Sample ``n`` tasks; the same RNG state gives the same tasks."""

    def tasks(self, split: Split = "train", seed: int = 0) -> list[Task]:
        """The fixed train or test tasks for ``seed``."""
        n = self.num_train if split == "train" else self.num_test
        return self.sample_tasks(n, _split_rng(seed, split))

    def distinct_tasks(self) -> list[Task] | None:
        """Every different training task where there are finitely many (a direction
        family's two, a benchmark's training split), so that a learner keeping one
        buffer per task can draw distinct ones; None where draws never repeat."""
        return None

    def make_env(self, task: Task | None = None, **kwargs: Any) -> gym.Env[Any, Any]:
        """A new environment (with its time limit) set to ``task`` or the family default."""
        from mtrl.envs.registration import register_envs

        register_envs()
        if task is None:
            return gym.make(self.env_id, **kwargs)
        # the task goes in as a constructor argument, so env.spec re-makes this task
        return gym.make(self.env_id, task=task, **kwargs)

    def set_task(self, env: gym.Env[Any, Any], task: Task) -> None:
        inner = env.unwrapped
        if not isinstance(inner, TaskSettable):
            raise TaskMismatchError(f"{type(inner).__name__} has no set_task; it is not a task env")
        inner.set_task(task)


@dataclass(frozen=True)
class ChoiceSampler:
    """The sampler of a family with finitely many tasks: one of ``choices``, uniformly."""

    choices: tuple[Mapping[str, Any], ...]

    def __call__(self, rng: np.random.Generator) -> dict[str, Any]:
        return dict(self.choices[int(rng.integers(len(self.choices)))])


@dataclass(frozen=True, eq=False)
class ParametricFamily(TaskFamily):
    """A family whose tasks are drawn by a pure sampler ``rng -> params``."""

    name: str
    env_id: str
    description: str
    sampler: Callable[[np.random.Generator], dict[str, Any]]
    default: Mapping[str, Any] | Callable[[], Mapping[str, Any]]
    difficulty: Callable[[Mapping[str, Any]], float] | None = None
    num_train: int = 40
    num_test: int = 10
    extra: Mapping[str, Any] = field(default_factory=dict)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return [Task.make(self.name, self.sampler(rng)) for _ in range(n)]

    def distinct_tasks(self) -> list[Task] | None:
        if not isinstance(self.sampler, ChoiceSampler):
            return None
        return [Task.make(self.name, c) for c in self.sampler.choices]

    def tasks(self, split: Split = "train", seed: int = 0) -> list[Task]:
        """The fixed train or test tasks; with finitely many, all of them for both
        splits (the direction tasks of MAML and PEARL are the same at meta-test)."""
        every = self.distinct_tasks()
        return every if every is not None else super().tasks(split, seed)

    def default_task(self) -> Task:
        params = self.default() if callable(self.default) else self.default
        return Task.make(self.name, params)

    def by_difficulty(self, tasks: list[Task]) -> list[Task]:
        """Tasks sorted from easiest to hardest (families with a difficulty measure)."""
        if self.difficulty is None:
            raise MtrlError(f"family {self.name!r} has no difficulty ordering")
        measure = self.difficulty
        return sorted(tasks, key=lambda t: measure(t.as_dict()))
