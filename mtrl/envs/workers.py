"""A vector env whose sub-envs run in a few worker processes, several per worker.

gymnasium's ``AsyncVectorEnv`` starts one process per sub-env: MT10 means ten
processes contending for two cores, and ten pipe round trips per step. Here each
worker hosts a contiguous (task-sorted) slice of the sub-envs in a gymnasium
``SyncVectorEnv`` and writes their observations into shared memory; the parent sends
each worker its slice of the actions and merges the small per-step infos. Workers
default to the number of cores. Sub-env ``i`` is seeded ``seed + i`` as in gymnasium's
vector envs, so the trajectories equal the sync env's.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import multiprocessing as mp
import os
import typing
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import (
    CloudpickleWrapper,
    create_shared_memory,
    read_from_shared_memory,
)

EnvFn = Callable[[], gym.Env[Any, Any]]


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def slices(n: int, workers: int) -> list[slice]:
    """Contiguous, near-equal slices of ``range(n)``, one per worker (none empty)."""
    bounds = np.linspace(0, n, min(workers, n) + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def merge_infos(parts: Sequence[dict[str, Any]], sizes: Sequence[int]) -> dict[str, Any]:
    """One vector-env info dict from the info dicts of consecutive sub-env groups,
    as a single vector env over all of them would have written it (gymnasium's
    layout: ``info[key]`` an array over sub-envs, ``info["_" + key]`` its mask)."""
    keys: list[str] = []
    for part in parts:
        keys += [k for k in part if k not in keys]
    out: dict[str, Any] = {}
    for key in keys:
        present = [part.get(key) for part in parts]
        if any(isinstance(v, dict) for v in present):
            out[key] = merge_infos([v if isinstance(v, dict) else {} for v in present], sizes)
            continue
        template = next(np.asarray(v) for v in present if v is not None)
        pieces = []
        for value, size in zip(present, sizes, strict=True):
            if value is not None:
                pieces.append(np.asarray(value))
            elif key.startswith("_"):
                pieces.append(np.zeros(size, dtype=bool))
            elif template.dtype == object:
                pieces.append(np.full(size, None, dtype=object))
            else:
                pieces.append(np.zeros((size, *template.shape[1:]), dtype=template.dtype))
        out[key] = np.concatenate(pieces)
    return out


def put_rows(view: Any, value: Any, start: int) -> None:
    """Write a batch of observations (arrays, or dicts/tuples of them) into rows
    ``start:`` of ``view`` (the shared-memory arrays), one copy per array."""
    if isinstance(view, dict):
        for key, sub in view.items():
            put_rows(sub, value[key], start)
    elif isinstance(view, tuple):
        for sub, part in zip(view, value, strict=True):
            put_rows(sub, part, start)
    else:
        rows = np.asarray(value)
        view[start : start + len(rows)] = rows


def _worker(
    fns: CloudpickleWrapper,
    offset: int,
    total: int,
    mode: str,
    pipe: Any,
    shm: Any,
) -> None:
    env = gym.vector.SyncVectorEnv(
        typing.cast(list[EnvFn], fns.fn),
        autoreset_mode=AutoresetMode(mode),
        observation_mode="different",
    )
    views = read_from_shared_memory(_single_space(env), shm, total)

    def publish(obs: Any) -> None:
        put_rows(views, obs, offset)

    try:
        while True:
            command, payload = pipe.recv()
            if command == "close":
                break
            try:
                pipe.send((True, _serve(env, command, payload, publish)))
            except Exception as exc:  # the parent re-raises it, naming the worker
                pipe.send((False, f"{type(exc).__name__}: {exc}"))
    except KeyboardInterrupt:
        pass
    finally:
        env.close()
        pipe.close()


def _serve(env: gym.vector.SyncVectorEnv, command: str, payload: Any, publish: Any) -> Any:
    if command == "reset":
        obs, info = env.reset(**payload)
        publish(obs)
        return info
    if command == "step":
        obs, rew, term, trunc, info = env.step(payload)
        publish(obs)
        return rew, term, trunc, info
    if command == "call":
        name, args, kwargs = payload
        return env.call(name, *args, **kwargs)
    if command == "set_attr":
        env.set_attr(*payload)
        return None
    if command == "render":
        return env.render()
    raise ValueError(f"unknown worker command {command!r}")


def _single_space(env: gym.vector.VectorEnv) -> gym.Space[Any]:
    from mtrl.envs.vector import _union_space

    return _union_space(env.observation_space, env.num_envs)


class WorkerVectorEnv(gym.vector.VectorEnv):
    """Sub-envs ``env_fns`` in ``workers`` processes (contiguous slices), one
    ``SyncVectorEnv`` each; observations through shared memory."""

    def __init__(
        self,
        env_fns: Sequence[EnvFn],
        workers: int | None = None,
        autoreset_mode: AutoresetMode = AutoresetMode.SAME_STEP,
        context: str = "spawn",
    ) -> None:
        probe = gym.vector.SyncVectorEnv(
            [env_fns[0]], autoreset_mode=autoreset_mode, observation_mode="different"
        )
        self.num_envs = len(env_fns)
        self.single_observation_space = _single_space(probe)
        self.single_action_space = probe.single_action_space
        self.metadata = dict(probe.metadata)
        self.metadata["autoreset_mode"] = autoreset_mode
        self.render_mode = probe.render_mode
        probe.close()
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, self.num_envs
        )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        ctx: Any = mp.get_context(context)
        self._shm = create_shared_memory(self.single_observation_space, self.num_envs, ctx)
        self._obs = read_from_shared_memory(self.single_observation_space, self._shm, self.num_envs)
        self._slices = slices(self.num_envs, workers or default_workers())
        self._sizes = [s.stop - s.start for s in self._slices]
        self._pipes = []
        self._procs = []
        for part in self._slices:
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_worker,
                args=(
                    CloudpickleWrapper(typing.cast(EnvFn, list(env_fns[part]))),
                    part.start,
                    self.num_envs,
                    autoreset_mode.value,
                    child,
                    self._shm,
                ),
                daemon=True,
            )
            proc.start()
            child.close()
            self._pipes.append(parent)
            self._procs.append(proc)
        self.closed = False

    @property
    def num_workers(self) -> int:
        return len(self._procs)

    def _gather(self) -> list[Any]:
        replies = [pipe.recv() for pipe in self._pipes]
        for k, (ok, payload) in enumerate(replies):
            if not ok:
                raise RuntimeError(f"env worker {k} (sub-envs {self._slices[k]}): {payload}")
        return [payload for _, payload in replies]

    def _observations(self) -> Any:
        return copy.deepcopy(self._obs)  # the shared arrays change at the next step

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        seeds: list[int | None]
        if seed is None:
            seeds = [None] * self.num_envs
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        for pipe, part in zip(self._pipes, self._slices, strict=True):
            pipe.send(("reset", {"seed": seeds[part], "options": options}))
        infos = self._gather()
        return self._observations(), merge_infos(infos, self._sizes)

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions)
        for pipe, part in zip(self._pipes, self._slices, strict=True):
            pipe.send(("step", actions[part]))
        results = self._gather()
        rewards = np.concatenate([r[0] for r in results])
        terms = np.concatenate([r[1] for r in results])
        truncs = np.concatenate([r[2] for r in results])
        info = merge_infos([r[3] for r in results], self._sizes)
        return self._observations(), rewards, terms, truncs, info

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        for pipe in self._pipes:
            pipe.send(("call", (name, args, kwargs)))
        return tuple(x for part in self._gather() for x in part)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return self.call(name)

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | object) -> None:
        if not isinstance(values, list | tuple):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"set_attr needs {self.num_envs} values, got {len(values)}")
        for pipe, part in zip(self._pipes, self._slices, strict=True):
            pipe.send(("set_attr", (name, list(values[part]))))
        self._gather()

    def render(self) -> tuple[Any, ...] | None:
        for pipe in self._pipes:
            pipe.send(("render", None))
        frames = [f for f in self._gather() if f is not None]
        return tuple(x for part in frames for x in part) if frames else None

    def close_extras(self, **kwargs: Any) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(BrokenPipeError, OSError):
                pipe.send(("close", None))
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
        for pipe in self._pipes:
            pipe.close()
