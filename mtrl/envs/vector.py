"""The multi-task vector env: N sub-envs bound to tasks, task ids in obs and infos."""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from mtrl.config import bounded, check_fields
from mtrl.envs.metaworld_suites import RewardVersion
from mtrl.envs.mixture import MixtureLayout, make_member_env, mixture_layout
from mtrl.envs.registry import get_family
from mtrl.envs.slots import TaskPool, TaskScheduler, TaskSlot
from mtrl.envs.workers import WorkerVectorEnv, union_space
from mtrl.envs.wrappers import EPISODE_KEY, TaskEncoding, TaskEpisodeStats, TaskIdentity
from mtrl.errors import ConfigError, UnknownNameError
from mtrl.tasks import ParametricFamily, Split, Task

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

    # One family or suite, or a mixture of several: ["pendulum", "navigation2d"] or
    # "pendulum+navigation2d" (tasks padded to one interface: mtrl.envs.mixture).
    name: str | list[str] = "MT10"
    split: Split = "train"
    # first N of the split (per member of a mixture: one number each); all when absent
    num_tasks: int | list[int] | None = None
    envs_per_task: int = bounded(1, ge=1, le=64)
    vectorization: Vectorization = "sync"
    # async: worker processes, each hosting a group of the sub-envs (default: one per
    # core); balance_workers groups them by step cost timed at start (mtrl.envs.workers)
    workers: int | None = None
    balance_workers: bool = True
    autoreset_mode: AutoresetName = "same_step"
    task_encoding: TaskEncoding = "index"
    reward_version: RewardVersion = "v2"  # Meta-World reward function version
    task_seed: int = bounded(0, ge=0)  # which tasks (goal sets, sampled parameters)
    # Choosing tasks: by label from the split (Meta-World env names, e.g. "push-v3"),
    # or explicit parameters of a sampled family (defaults filled in), optionally
    # sorted easiest first by the family's difficulty measure.
    tasks: list[str] | None = None
    task_params: list[dict[str, float | list[float]]] | None = None
    order: Literal["given", "difficulty"] = "given"
    max_episode_steps: int | None = None  # the family's own limit when absent
    render_mode: Literal["rgb_array"] | None = None  # frames for videos (mtrl record)
    # sub-envs when a curriculum re-binds them (default: envs_per_task x tasks)
    num_envs: int | None = None

    def __post_init__(self) -> None:
        check_fields(self, "env")
        if isinstance(self.name, str) and "+" in self.name:
            object.__setattr__(self, "name", self.name.split("+"))
        members = self.members
        if not members or "" in members:
            raise ValueError(f"env.name = {self.name!r} names no family")
        if len(set(members)) < len(members):
            raise ValueError(f"env.name = {self.name!r} lists a family twice")
        counts = self.num_tasks_per_member
        if counts is not None and len(counts) != len(members):
            raise ValueError(
                f"env.num_tasks = {self.num_tasks} needs one count per member of "
                f"env.name ({len(members)}: {', '.join(members)})"
            )
        if counts is not None and min(counts) < 1:
            raise ValueError(f"num_tasks = {self.num_tasks} must be >= 1 (or absent for all)")
        if len(members) > 1:
            if self.task_params is not None:
                raise ValueError(
                    "env.task_params sets one family's parameters; a mixture picks tasks "
                    "with env.num_tasks (per member) or env.tasks (labels)"
                )
            if self.order != "given":
                raise ValueError("env.order = 'difficulty' needs a single family, not a mixture")
        if self.tasks is not None and self.task_params is not None:
            raise ValueError("give env.tasks (labels) or env.task_params, not both")
        for key in ("tasks", "task_params"):
            if getattr(self, key) == []:
                raise ValueError(f"env.{key} is empty; leave it out to use every task")
        for key in ("max_episode_steps", "num_envs", "workers"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"env.{key} = {value} must be >= 1 (or absent)")

    @property
    def members(self) -> list[str]:
        """The families or suites of this env (one unless it is a mixture)."""
        return [self.name] if isinstance(self.name, str) else list(self.name)

    @property
    def label(self) -> str:
        """The env's name for tables and summaries: ``a+b`` for a mixture."""
        return "+".join(self.members)

    @property
    def num_tasks_per_member(self) -> list[int] | None:
        if self.num_tasks is None:
            return None
        if isinstance(self.num_tasks, int):
            return [self.num_tasks] * len(self.members)
        return list(self.num_tasks)


def _make_sub_env(
    task: Task,
    task_index: int,
    num_tasks: int,
    encoding: TaskEncoding,
    env_kwargs: dict[str, Any],
    layout: MixtureLayout | None = None,
    family: int = 0,
) -> gym.Env[Any, Any]:
    env = make_member_env(task, env_kwargs, layout, family)
    env = TaskEpisodeStats(env, task_index)
    return TaskIdentity(env, task_index, num_tasks, encoding)


def _make_slot_env(
    tasks: Sequence[Task],
    slot: int,
    encoding: TaskEncoding,
    env_kwargs: dict[str, Any],
    scheduler: TaskScheduler,
    layout: MixtureLayout | None = None,
    family_ids: Sequence[int] | None = None,
) -> gym.Env[Any, Any]:
    pool = TaskPool(tasks, 0, env_kwargs, layout, family_ids)
    env: gym.Env[Any, Any] = TaskIdentity(TaskEpisodeStats(pool, 0), 0, len(tasks), encoding)
    return TaskSlot(env, pool, slot, scheduler)


def _vectorize(
    fns: Sequence[Callable[[], gym.Env[Any, Any]]],
    vectorization: Vectorization,
    autoreset_mode: AutoresetName,
    workers: int | None,
    balance: bool,
) -> gym.vector.VectorEnv:
    """The sub-envs in one process (``sync``) or in worker processes (``async``)."""
    if autoreset_mode not in _AUTORESET:
        raise ValueError(
            f"autoreset_mode must be one of {sorted(_AUTORESET)}, got {autoreset_mode!r}"
        )
    mode = _AUTORESET[autoreset_mode]
    if vectorization == "sync":
        # Meta-World classes declare different goal bounds: batch them per env.
        return gym.vector.SyncVectorEnv(
            list(fns), autoreset_mode=mode, observation_mode="different"
        )
    if vectorization == "async":
        return WorkerVectorEnv(list(fns), workers, autoreset_mode=mode, balance=balance)
    raise ValueError(f"vectorization must be 'sync' or 'async', got {vectorization!r}")


class MultiTaskVecEnv(gym.vector.VectorWrapper):
    """A gymnasium vector env whose sub-env ``i`` runs ``tasks[task_ids[i]]``.

    Sub-envs of one task are adjacent (task-sorted), so per-task batches are slices.
    Finished episodes are collected per task; :meth:`episode_statistics` summarises them.
    Built with a ``scheduler`` (a curriculum), each sub-env asks it for the task of its
    next episode instead (:mod:`mtrl.envs.slots`); ``task_ids`` then changes over time.
    """

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        tasks: Sequence[Task],
        task_ids: np.ndarray,
        families: Sequence[str] | None = None,
        family_ids: Sequence[int] | None = None,
    ) -> None:
        super().__init__(env)
        self.single_observation_space = union_space(env.observation_space, env.num_envs)
        self.tasks = list(tasks)
        # member families (one unless a mixture) and each task's member index
        self.families = list(families) if families else sorted({t.family for t in tasks})
        self.task_family = np.asarray(
            family_ids if family_ids is not None else [0] * len(tasks), dtype=np.int64
        )
        self._task_ids = task_ids
        self._slots: list[TaskSlot] | None = None
        if isinstance(env, gym.vector.SyncVectorEnv) and all(
            isinstance(e, TaskSlot) for e in env.envs
        ):
            self._slots = [typing.cast(TaskSlot, e) for e in env.envs]
            self._scheduler = self._slots[0].scheduler
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
        scheduler: TaskScheduler | None = None,
        num_envs: int | None = None,
        families: Sequence[str] | None = None,
        family_ids: Sequence[int] | None = None,
        workers: int | None = None,
        balance_workers: bool = True,
    ) -> MultiTaskVecEnv:
        """Sub-envs bound to ``tasks`` (``envs_per_task`` each), or, with a
        ``scheduler``, ``num_envs`` sub-envs that run whichever task it picks.
        ``families`` (member names) and ``family_ids`` (each task's member) make a
        mixture of families, padded to one interface (:mod:`mtrl.envs.mixture`)."""
        if not tasks:
            raise ValueError("a multi-task vector env needs at least one task")
        if envs_per_task < 1:
            raise ValueError(f"envs_per_task must be >= 1, got {envs_per_task}")
        kwargs = dict(env_kwargs or {})
        fam = list(family_ids) if family_ids is not None else [0] * len(tasks)
        if len(fam) != len(tasks):
            raise ValueError(f"family_ids has {len(fam)} entries for {len(tasks)} tasks")
        layout = mixture_layout(families or [], tasks, fam, kwargs)
        task_ids = np.repeat(np.arange(len(tasks)), envs_per_task)
        fns: list[Callable[[], gym.Env[Any, Any]]]
        if scheduler is None:
            fns = [
                functools.partial(
                    _make_sub_env, tasks[i], i, len(tasks), task_encoding, kwargs, layout, fam[i]
                )
                for i in task_ids.tolist()
            ]
        else:
            if vectorization != "sync":
                raise ConfigError(
                    "a curriculum re-binds sub-envs in this process: use env.vectorization = 'sync'"
                )
            slots = num_envs or len(task_ids)
            task_ids = np.zeros(slots, dtype=np.int64)
            fns = [
                functools.partial(
                    _make_slot_env, tasks, i, task_encoding, kwargs, scheduler, layout, fam
                )
                for i in range(slots)
            ]
        vec = _vectorize(fns, vectorization, autoreset_mode, workers, balance_workers)
        return cls(vec, tasks, task_ids, families, fam)

    def __enter__(self) -> MultiTaskVecEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def task_ids(self) -> np.ndarray:
        """The task each sub-env runs now (fixed unless a scheduler re-binds them)."""
        if self._slots is None:
            return self._task_ids
        return np.array([s.task_index for s in self._slots], dtype=np.int64)

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call (or read, if not callable) ``name`` on every sub-env, as gymnasium's
        vector envs do."""
        return tuple(typing.cast(Any, self.env).call(name, *args, **kwargs))

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """Each sub-env's attribute ``name`` (searched through its wrappers)."""
        return tuple(typing.cast(Any, self.env).get_attr(name))

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | object) -> None:
        """Set ``name`` on every sub-env: one value each, or one value for all."""
        typing.cast(Any, self.env).set_attr(name, values)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        if self._slots is not None:
            self._scheduler.record_steps(self.task_ids)
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        # Same-step autoreset moves the last step's info of finished envs to "final_info".
        self._collect(infos.get("final_info", infos))
        return obs, rewards, terminations, truncations, infos

    def state(self) -> bytes | None:
        """Everything needed to continue exactly where the env is (sub-envs' physics,
        RNGs, episode counters, pending episode statistics), for checkpoints; None for
        async envs, whose sub-envs live in other processes."""
        if not isinstance(self.env, gym.vector.SyncVectorEnv):
            return None
        from mtrl.envs.snapshot import snapshot

        external = {"scheduler": self._scheduler} if self._slots is not None else {}
        return snapshot((self.env, dict(self._episodes)), external)

    def load_state(self, blob: bytes) -> None:
        """Continue from :meth:`state`'s snapshot (this env's scheduler re-attached)."""
        from mtrl.envs.snapshot import restore

        external = {"scheduler": self._scheduler} if self._slots is not None else {}
        env, episodes = restore(blob, external)
        old, self.env = self.env, env
        old.close()
        self._episodes = defaultdict(list, episodes)
        if self._slots is not None:
            self._slots = [typing.cast(TaskSlot, e) for e in env.envs]

    def _collect(self, infos: dict[str, Any]) -> None:
        done = infos.get(f"_{EPISODE_KEY}")
        if done is None or not done.any():
            return
        ep = infos[EPISODE_KEY]
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


def eval_env_config(e: MultiTaskEnvConfig) -> MultiTaskEnvConfig:
    """The same tasks, one sub-env each and no curriculum: for evaluation."""
    return dataclasses.replace(
        e,
        envs_per_task=1,
        vectorization="sync",
        autoreset_mode="same_step",
        task_encoding="index",
        num_envs=None,
    )


def resolve_tasks(cfg: MultiTaskEnvConfig) -> list[Task]:
    """The tasks a config names, in order: the split's (first ``num_tasks``), those
    picked by label, or explicit parameter sets; then sorted by difficulty if asked.
    A mixture's tasks are its members' in turn (global ids: positions in this list)."""
    return resolve_mixture(cfg)[0]


def resolve_mixture(cfg: MultiTaskEnvConfig) -> tuple[list[Task], list[int]]:
    """The tasks and, per task, the index of its member family in ``cfg.members``."""
    tasks, family_ids = _mixture_tasks(cfg)
    if cfg.reward_version != "v2" and all(t.family != "metaworld" for t in tasks):
        raise ConfigError(
            f"env.reward_version = {cfg.reward_version!r} chooses Meta-World's reward, but "
            f"{cfg.label} has no Meta-World task; remove env.reward_version"
        )
    return tasks, family_ids


def _mixture_tasks(cfg: MultiTaskEnvConfig) -> tuple[list[Task], list[int]]:
    members = cfg.members
    per_member = cfg.num_tasks_per_member
    counts: list[int | None] = [None] * len(members) if per_member is None else [*per_member]
    if len(members) == 1:
        tasks = _member_tasks(cfg, members[0], counts[0], cfg.tasks)
        return tasks, [0] * len(tasks)
    pools = [_member_tasks(cfg, m, n, None) for m, n in zip(members, counts, strict=True)]
    family_ids = [f for f, pool in enumerate(pools) for _ in pool]
    tasks = [t for pool in pools for t in pool]
    if cfg.tasks is not None:
        by_label = {t.label: (t, f) for t, f in zip(tasks, family_ids, strict=True)}
        for label in cfg.tasks:
            if label not in by_label:
                raise UnknownNameError(f"task of {cfg.label}", label, by_label)
        tasks = [by_label[label][0] for label in cfg.tasks]
        family_ids = [by_label[label][1] for label in cfg.tasks]
    return tasks, family_ids


def _member_tasks(
    cfg: MultiTaskEnvConfig, name: str, num_tasks: int | None, labels: list[str] | None
) -> list[Task]:
    family = get_family(name)
    if cfg.task_params is not None:
        if not isinstance(family, ParametricFamily):
            raise ConfigError(
                f"env.task_params needs a sampled family; {name} has fixed tasks "
                "(pick them with env.tasks)"
            )
        base = family.default_task().as_dict()
        tasks = []
        for i, params in enumerate(cfg.task_params):
            unknown = sorted(set(params) - set(base))
            if unknown:
                raise ConfigError(
                    f"env.task_params[{i}] has unknown parameters {unknown}; "
                    f"{name} takes {', '.join(base)}"
                )
            tasks.append(Task.make(family.name, {**base, **params}))
    else:
        tasks = family.tasks(cfg.split, seed=cfg.task_seed)
        if not tasks:
            raise ConfigError(f"{name} has no {cfg.split} tasks; use split = 'train'")
        if labels is not None:
            by_label = {t.label: t for t in tasks}
            for label in labels:
                if label not in by_label:
                    raise UnknownNameError(f"task of {name}", label, by_label)
            tasks = [by_label[label] for label in labels]
    if num_tasks is not None:
        if num_tasks > len(tasks):
            raise ConfigError(
                f"num_tasks = {num_tasks} but {name} has {len(tasks)} {cfg.split} tasks"
            )
        tasks = tasks[:num_tasks]
    if cfg.order == "difficulty":
        if not isinstance(family, ParametricFamily) or family.difficulty is None:
            raise ConfigError(
                f"env.order = 'difficulty': {name} has no difficulty measure; "
                "list the tasks in the order you want and use order = 'given'"
            )
        tasks = family.by_difficulty(tasks)
    return tasks


def make_multitask_env(
    cfg: MultiTaskEnvConfig, scheduler: TaskScheduler | None = None
) -> MultiTaskVecEnv:
    """Build the multi-task vector env a config describes (re-bound by ``scheduler``)."""
    tasks, family_ids = resolve_mixture(cfg)
    env_kwargs: dict[str, Any] = {}
    if any(t.family == "metaworld" for t in tasks):
        env_kwargs["reward_function_version"] = cfg.reward_version
    if cfg.max_episode_steps is not None:
        env_kwargs["max_episode_steps"] = cfg.max_episode_steps
    if cfg.render_mode is not None:
        env_kwargs["render_mode"] = cfg.render_mode
    return MultiTaskVecEnv.from_tasks(
        tasks,
        envs_per_task=cfg.envs_per_task,
        vectorization=cfg.vectorization,
        autoreset_mode=cfg.autoreset_mode,
        task_encoding=cfg.task_encoding,
        env_kwargs=env_kwargs,
        scheduler=scheduler,
        num_envs=cfg.num_envs,
        families=cfg.members,
        family_ids=family_ids,
        workers=cfg.workers,
        balance_workers=cfg.balance_workers,
    )
