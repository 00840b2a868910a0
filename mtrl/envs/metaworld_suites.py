"""Meta-World v3 through its own API: MT1/MT10/MT50, ML1/ML10/ML45, Continual World.

Meta-World defines each benchmark as a set of environment classes with 50 goal
variants each, generated from a seed. mtrl's :class:`MetaWorldTaskEnv` holds one
environment class and its goal variants, and binds an mtrl :class:`~mtrl.tasks.Task`
``(benchmark, seed, split, env_name, goal)``: ``goal = -1`` samples a goal variant per
episode from the env's seeded RNG (the multi-task protocol), ``goal >= 0`` fixes one
(a meta-learning task). The reward-function version (``"v2"`` by default) is explicit.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from mtrl.errors import UnknownNameError
from mtrl.tasks import ParamValue, Split, Task, TaskEnvMixin, TaskFamily, as_int

# Meta-World's reward functions, or "success": 1 at every step where the task's success
# flag is set, else 0 (the sparse reward IBRL fine-tunes on). V2's shaped reward is
# nearly flat across the success radius (reach: 9.9999 just outside it, 10 inside), so
# RL on it can trade success away for return; on "success" the return counts the steps
# spent in success.
RewardVersion = Literal["v1", "v2", "success"]
FAMILY = "metaworld"
MAX_EPISODE_STEPS = 500

# Continual World's CW10 sequence (Wołczyk et al. 2021), in v3 names; CW20 repeats it.
CW10 = (
    "hammer-v3",
    "push-wall-v3",
    "faucet-close-v3",
    "push-back-v3",
    "stick-pull-v3",
    "handle-press-side-v3",
    "push-v3",
    "shelf-place-v3",
    "window-close-v3",
    "peg-unplug-side-v3",
)

GoalSets = dict[str, dict[str, list[Any]]]  # split -> env_name -> [metaworld.types.Task]


def all_env_names() -> list[str]:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return list(ALL_V3_ENVIRONMENTS)


def cache_root() -> Path:
    """mtrl's cache: ``$MTRL_CACHE_DIR``, else ``$XDG_CACHE_HOME/mtrl`` or ``~/.cache/mtrl``."""
    root = os.environ.get("MTRL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mtrl"
    )
    return Path(root)


def _cache_dir() -> Path:
    return cache_root() / "metaworld" / importlib.metadata.version("metaworld")


def _build_goal_sets(benchmark: str, seed: int) -> GoalSets:
    import metaworld

    kind, _, env_name = benchmark.partition(":")
    if kind in ("MT1", "ML1"):
        bench = getattr(metaworld, kind)(env_name, seed=seed)
    elif kind in ("MT10", "MT50", "ML10", "ML45"):
        bench = getattr(metaworld, kind)(seed=seed)
    else:
        raise UnknownNameError(
            "Meta-World benchmark", benchmark, ["MT1", "MT10", "MT50", "ML1", "ML10", "ML45"]
        )
    out: GoalSets = {"train": {}, "test": {}}
    for split, tasks in (("train", bench.train_tasks), ("test", bench.test_tasks)):
        for t in tasks:
            out[split].setdefault(t.env_name, []).append(t)
    return out


@functools.cache
def goal_sets(benchmark: str, seed: int) -> GoalSets:
    """Meta-World's goal variants for a benchmark and seed, cached in memory and on disk.

    Generating them resets every environment 50 times (MT50: ~40 s), so the result is
    stored under ``$MTRL_CACHE_DIR`` (default ``~/.cache/mtrl``), keyed by the
    Meta-World version, benchmark and seed.
    """
    path = _cache_dir() / f"{benchmark.replace(':', '_')}-seed{seed}.pkl"
    if path.is_file():
        try:
            with path.open("rb") as fh:
                return dict(pickle.load(fh))
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            pass  # a damaged cache entry is rebuilt below
    sets = _build_goal_sets(benchmark, seed)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            pickle.dump(sets, fh)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs time
    return sets


def metaworld_task(benchmark: str, seed: int, split: Split, env_name: str, goal: int = -1) -> Task:
    return Task.make(
        FAMILY,
        {"benchmark": benchmark, "seed": seed, "split": split, "env_name": env_name, "goal": goal},
    )


class MetaWorldTaskEnv(TaskEnvMixin, gym.Env[np.ndarray, np.ndarray]):
    """One Meta-World environment class bound to an mtrl task (see module docstring)."""

    family_name = FAMILY

    def __init__(
        self,
        env_name: str | None = None,
        task: Task | None = None,
        *,
        goals: Sequence[Any] | None = None,
        reward_function_version: RewardVersion = "v2",
        render_mode: Literal["human", "rgb_array", "depth_array"] | None = None,
    ) -> None:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        if task is None:
            if env_name is None:
                raise ValueError(
                    "MetaWorldTaskEnv needs env_name or task, e.g. env_name='reach-v3'"
                )
            task = metaworld_task(f"MT1:{env_name}", 0, "train", env_name)
        name = str(task["env_name"])
        if env_name is not None and env_name != name:
            raise ValueError(f"env_name {env_name!r} differs from the task's {name!r}")
        if name not in ALL_V3_ENVIRONMENTS:
            raise UnknownNameError("Meta-World environment", name, ALL_V3_ENVIRONMENTS)
        if reward_function_version not in ("v1", "v2", "success"):
            raise ValueError(
                "reward_function_version must be 'v1', 'v2' or 'success', got "
                f"{reward_function_version!r}"
            )
        self.env_name = name
        self.reward_function_version = reward_function_version
        self._success_reward = reward_function_version == "success"
        self._env = ALL_V3_ENVIRONMENTS[name](
            reward_function_version="v2" if self._success_reward else reward_function_version,
            render_mode=render_mode,
        )
        self.render_mode = render_mode
        self._goals: list[Any] = list(goals) if goals is not None else []
        self._goal_key: tuple[ParamValue, ...] | None = None if goals is None else self._key(task)
        self.set_task(task)
        self.action_space = self._env.action_space
        self.metadata = dict(self._env.metadata)
        self.goal_index = -1

    @staticmethod
    def _key(task: Task) -> tuple[ParamValue, ...]:
        return (task["benchmark"], task["seed"], task["split"])

    def _apply_task(self, params: dict[str, ParamValue]) -> None:
        if params["env_name"] != self.env_name:
            raise ValueError(
                f"this env runs {self.env_name!r}; "
                f"tasks of {params['env_name']!r} need their own env"
            )
        key = (params["benchmark"], params["seed"], params["split"])
        if key != self._goal_key:
            sets = goal_sets(str(params["benchmark"]), as_int(params["seed"]))
            self._goals = sets[str(params["split"])][self.env_name]
            self._goal_key = key
        self._fixed_goal = as_int(params["goal"])
        if not -1 <= self._fixed_goal < len(self._goals):
            raise ValueError(f"goal index {self._fixed_goal} outside [-1, {len(self._goals)})")
        self._env.set_task(self._goals[max(self._fixed_goal, 0)])
        # Meta-World's own ``observation_space`` keeps the bounds it had at construction
        # (goal hidden); ``sawyer_observation_space`` is recomputed for the task's goal mode.
        self.observation_space = self._env.sawyer_observation_space

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if self._fixed_goal < 0:
            self.goal_index = int(self.np_random.integers(len(self._goals)))
            self._env.set_task(self._goals[self.goal_index])
        else:
            self.goal_index = self._fixed_goal
        obs, info = self._env.reset()
        info["goal_index"] = self.goal_index
        return obs, info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._env.step(action)
        if self._success_reward:
            reward = float(info["success"] > 0)
        return obs, float(reward), terminated, truncated, info

    def render(self) -> Any:
        return self._env.render()

    def close(self) -> None:
        self._env.close()

    @property
    def sawyer_env(self) -> Any:
        """The underlying Meta-World environment (for Meta-World's own tools)."""
        return self._env


@dataclass(frozen=True, eq=False)
class MetaWorldSuite(TaskFamily):
    """A Meta-World benchmark as a task family with fixed train/test tasks.

    ``kind="mt"``: one task per environment class, goals resampled per episode.
    ``kind="ml"``: one task per (class, goal variant); test tasks are held out.
    ``kind="cw"``: a Continual World sequence of MT-style tasks, in order.
    """

    name: str
    description: str
    benchmark: str
    kind: Literal["mt", "ml", "cw"]
    sequence: tuple[str, ...] = ()
    env_id: str = "mtrl/MetaWorld-v0"

    def tasks(self, split: Split = "train", seed: int = 0) -> list[Task]:
        sets = goal_sets(self.benchmark, seed)
        if self.kind == "cw":
            if split == "test":
                return []
            return [metaworld_task(self.benchmark, seed, "train", n) for n in self.sequence]
        if self.kind == "mt":
            return [metaworld_task(self.benchmark, seed, split, n) for n in sets[split]]
        return [
            metaworld_task(self.benchmark, seed, split, n, i)
            for n, goals in sets[split].items()
            for i in range(len(goals))
        ]

    @property
    def num_train(self) -> int:  # type: ignore[override]
        return self._count("train")

    @property
    def num_test(self) -> int:  # type: ignore[override]
        return self._count("test")

    def _count(self, split: Split) -> int:
        from metaworld import env_dict

        if self.kind == "cw":
            return len(self.sequence) if split == "train" else 0
        kind = self.benchmark.partition(":")[0]
        if kind == "MT1":
            return 1 if split == "train" else 0
        if kind == "ML1":
            return 50
        if kind in ("MT10", "MT50"):
            classes = env_dict.MT10_V3 if kind == "MT10" else env_dict.MT50_V3
            return len(classes) if split == "train" else 0
        ml = env_dict.ML10_V3 if kind == "ML10" else env_dict.ML45_V3
        return 50 * len(ml[split])

    def shared_goals(self, seed: int = 0) -> int:
        """How many test goals are also training goals of the same class (0 for
        Meta-World's ML benchmarks: meta-RL's held-out tasks must be new)."""
        sets = goal_sets(self.benchmark, seed)
        train = {(name, g.data) for name, goals in sets["train"].items() for g in goals}
        test = {(name, g.data) for name, goals in sets["test"].items() for g in goals}
        return len(train & test)

    def distinct_tasks(self) -> list[Task] | None:
        return self.tasks("train", seed=0)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """``n`` train tasks drawn uniformly (without replacement while there are enough)."""
        pool = self.tasks("train", seed=0)
        idx = rng.choice(len(pool), size=n, replace=n > len(pool))
        return [pool[int(i)] for i in idx]

    def make_env(self, task: Task | None = None, **kwargs: Any) -> gym.Env[Any, Any]:
        task = task or self.tasks("train")[0]
        return make_metaworld_env(task, **kwargs)


def make_metaworld_env(task: Task, **kwargs: Any) -> gym.Env[Any, Any]:
    """A time-limited (500 steps) Meta-World env bound to ``task``."""
    from mtrl.envs.registration import register_envs

    register_envs()
    return gym.make("mtrl/MetaWorld-v0", task=task, **kwargs)


def metaworld_suites() -> dict[str, MetaWorldSuite]:
    """The fixed Meta-World suites (MT1/ML1 are per environment: ``MT1:reach-v3``)."""
    return {
        "MT10": MetaWorldSuite("MT10", "Meta-World MT10: 10 manipulation tasks", "MT10", "mt"),
        "MT50": MetaWorldSuite("MT50", "Meta-World MT50: 50 manipulation tasks", "MT50", "mt"),
        "ML10": MetaWorldSuite(
            "ML10", "Meta-World ML10: 10 train, 5 held-out classes", "ML10", "ml"
        ),
        "ML45": MetaWorldSuite(
            "ML45", "Meta-World ML45: 45 train, 5 held-out classes", "ML45", "ml"
        ),
        "CW10": MetaWorldSuite(
            "CW10", "Continual World CW10 task sequence", "MT50", "cw", sequence=CW10
        ),
        "CW20": MetaWorldSuite(
            "CW20", "Continual World CW20 (CW10 twice)", "MT50", "cw", sequence=CW10 + CW10
        ),
    }


def single_env_suite(kind: Literal["MT1", "ML1"], env_name: str) -> MetaWorldSuite:
    if env_name not in all_env_names():
        raise UnknownNameError("Meta-World environment", env_name, all_env_names())
    if kind == "MT1":
        return MetaWorldSuite(
            f"MT1:{env_name}", f"MT1 {env_name}, 50 goals", f"MT1:{env_name}", "mt"
        )
    return MetaWorldSuite(
        f"ML1:{env_name}", f"ML1 {env_name}, 50 train / 50 test goals", f"ML1:{env_name}", "ml"
    )
