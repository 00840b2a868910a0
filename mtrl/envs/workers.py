"""A vector env whose sub-envs run in a few worker processes, several per worker.

gymnasium's ``AsyncVectorEnv`` starts one process per sub-env: MT10 means ten
processes contending for two cores, and ten pipe round trips per step. Here each
worker hosts a group of the sub-envs in a gymnasium ``SyncVectorEnv`` and writes their
observations into shared memory; the parent sends each worker its rows of the actions
and merges the small per-step infos. Workers default to the number of cores.

Sub-envs differ in cost (a Meta-World pick-place step takes ~3x a window-open step), and
a vector step waits for the slowest worker. With ``balance`` the workers first time a
few random steps of each of their sub-envs, the parent groups the sub-envs by measured
cost (longest first, each to the least-loaded worker), and every worker rebuilds its
group fresh, so the probe leaves no trace in the envs. Sub-env ``i`` is seeded
``seed + i`` as in gymnasium's vector envs whatever its worker, so the trajectories
equal the sync env's.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import multiprocessing as mp
import os
import signal
import time
import typing
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import (
    CloudpickleWrapper,
    create_shared_memory,
    read_from_shared_memory,
)

from mtrl.errors import MtrlError

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


def exit_description(proc: Any) -> str:
    """How a worker process that stopped answering ended (waiting a moment for it)."""
    proc.join(timeout=1.0)
    code = proc.exitcode
    if code is None:
        return "stopped answering"
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"


def gather_replies(
    pipes: Sequence[Any], died: Callable[[int], Exception], where: Callable[[int], str]
) -> list[Any]:
    """Each worker's ``(ok, payload)`` reply to its last command, payloads in worker
    order: a worker that is gone raises ``died(k)``; a command that raised in worker
    ``k`` is raised here, naming the worker and ``where(k)`` (its envs)."""
    replies = []
    for k, pipe in enumerate(pipes):
        try:
            replies.append(pipe.recv())
        except (EOFError, OSError) as exc:
            raise died(k) from exc
    for k, (ok, payload) in enumerate(replies):
        if not ok:
            raise RuntimeError(f"env worker {k} ({where(k)}): {payload}")
    return [payload for _, payload in replies]


def balanced_groups(costs: Sequence[float], workers: int) -> list[list[int]]:
    """Sub-env indices per worker, loads balanced: longest processing time first, each
    to the least-loaded worker (makespan within 4/3 of the optimum); indices sorted
    within a group, groups ordered by their first index, none empty."""
    k = min(workers, len(costs))
    groups: list[list[int]] = [[] for _ in range(k)]
    loads = [0.0] * k
    for i in sorted(range(len(costs)), key=lambda j: (-costs[j], j)):
        w = min(range(k), key=lambda g: (loads[g], len(groups[g]), g))
        groups[w].append(i)
        loads[w] += costs[i]
    return sorted((sorted(g) for g in groups), key=lambda g: g[0])


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


def put_rows(view: Any, value: Any, rows: slice | np.ndarray) -> None:
    """Write a batch of observations (arrays, or dicts/tuples of them) into ``rows``
    of ``view`` (the shared-memory arrays), one copy per array."""
    if isinstance(view, dict):
        for key, sub in view.items():
            put_rows(sub, value[key], rows)
    elif isinstance(view, tuple):
        for sub, part in zip(view, value, strict=True):
            put_rows(sub, part, rows)
    else:
        view[rows] = np.asarray(value)


def reorder(value: Any, order: np.ndarray) -> Any:
    """``value`` (an array over sub-envs, or a dict of them) indexed by ``order``."""
    if isinstance(value, dict):
        return {key: reorder(sub, order) for key, sub in value.items()}
    return np.asarray(value)[order]


def _as_rows(group: Sequence[int]) -> slice | np.ndarray:
    """A contiguous group as a slice (a view write), any other as an index array."""
    if list(group) == list(range(group[0], group[0] + len(group))):
        return slice(group[0], group[0] + len(group))
    return np.asarray(group)


def _probe_costs(env: gym.vector.SyncVectorEnv, steps: int) -> list[float]:
    """Seconds per step of each sub-env over ``steps`` random steps; the slowest tenth
    of the steps is dropped (the process was preempted, not the env slow)."""
    costs = []
    for k, sub in enumerate(env.envs):
        sub.reset(seed=k)
        sub.action_space.seed(k)
        times = np.empty(steps)
        for t in range(steps):
            action = sub.action_space.sample()
            start = time.perf_counter()
            _, _, term, trunc, _ = sub.step(action)
            times[t] = time.perf_counter() - start
            if term or trunc:
                sub.reset()
        costs.append(float(np.sort(times)[: max(1, (9 * steps) // 10)].mean()))
    return costs


def _build(fns: Sequence[EnvFn], group: Sequence[int], mode: str) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv(
        [fns[i] for i in group], autoreset_mode=AutoresetMode(mode), observation_mode="different"
    )


def _worker(
    fns: CloudpickleWrapper,
    group: list[int],
    total: int,
    mode: str,
    pipe: Any,
    shm: Any,
) -> None:
    all_fns = typing.cast(list[EnvFn], fns.fn)
    env = _build(all_fns, group, mode)
    views = read_from_shared_memory(_single_space(env), shm, total)
    rows = _as_rows(group)

    def publish(obs: Any) -> None:
        put_rows(views, obs, rows)

    try:
        while True:
            command, payload = pipe.recv()
            if command == "close":
                break
            try:
                if command == "regroup":  # rebuild fresh: no trace of the probe
                    env.close()
                    env = _build(all_fns, payload, mode)
                    rows = _as_rows(payload)
                    pipe.send((True, None))
                else:
                    pipe.send((True, _serve(env, command, payload, publish)))
            except Exception as exc:  # the parent re-raises it, naming the worker
                pipe.send((False, f"{type(exc).__name__}: {exc}"))
    except KeyboardInterrupt:
        pass
    finally:
        env.close()
        pipe.close()


def _serve(env: gym.vector.SyncVectorEnv, command: str, payload: Any, publish: Any) -> Any:
    if command == "probe":
        return _probe_costs(env, payload)
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


def union_space(batched: gym.Space[Any], n: int) -> gym.Space[Any]:
    """The single-env space covering every sub-env of a batched space."""
    if isinstance(batched, spaces.Dict):
        return spaces.Dict({k: union_space(v, n) for k, v in batched.spaces.items()})
    if isinstance(batched, spaces.Box):
        return spaces.Box(batched.low.min(axis=0), batched.high.max(axis=0), dtype=batched.dtype)
    if isinstance(batched, spaces.MultiDiscrete):
        return spaces.Discrete(int(batched.nvec.max()))
    raise TypeError(f"unsupported batched observation space {batched}")


def _single_space(env: gym.vector.VectorEnv) -> gym.Space[Any]:
    return union_space(env.observation_space, env.num_envs)


class WorkerVectorEnv(gym.vector.VectorEnv):
    """Sub-envs ``env_fns`` in ``workers`` processes, one ``SyncVectorEnv`` each;
    observations through shared memory. With ``balance`` (and more sub-envs than
    workers) the groups follow the sub-envs' measured step costs; otherwise they are
    contiguous slices. Explicit ``groups`` (a partition of the sub-env indices, one
    group per worker) override both."""

    def __init__(
        self,
        env_fns: Sequence[EnvFn],
        workers: int | None = None,
        autoreset_mode: AutoresetMode = AutoresetMode.SAME_STEP,
        context: str = "spawn",
        balance: bool = True,
        probe_steps: int = 100,
        groups: Sequence[Sequence[int]] | None = None,
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
        if groups is not None:
            given = sorted(i for g in groups for i in g)
            if given != list(range(self.num_envs)) or not all(groups):
                raise ValueError(
                    f"groups {[list(g) for g in groups]} must split sub-envs "
                    f"0..{self.num_envs - 1} into non-empty groups, each index once"
                )
            self._set_groups([sorted(g) for g in groups])
        else:
            count = workers or default_workers()
            self._set_groups([list(range(s.start, s.stop)) for s in slices(self.num_envs, count)])
        self._pipes = []
        self._procs = []
        packed = CloudpickleWrapper(typing.cast(EnvFn, list(env_fns)))
        for group in self.groups:
            parent, child = ctx.Pipe()
            args = (packed, group, self.num_envs, autoreset_mode.value, child, self._shm)
            proc = ctx.Process(target=_worker, args=args, daemon=True)
            proc.start()
            child.close()
            self._pipes.append(parent)
            self._procs.append(proc)
        self.closed = False
        self.step_costs: list[float] | None = None
        if balance and groups is None and self.num_envs > len(self.groups) > 1:
            self._balance(probe_steps)

    def _set_groups(self, groups: list[list[int]]) -> None:
        self.groups = groups
        self._sizes = [len(g) for g in groups]
        self._index = [np.asarray(g) for g in groups]
        order = np.concatenate(self._index)
        identity = bool(np.array_equal(order, np.arange(self.num_envs)))
        self._inverse: np.ndarray | None = None if identity else np.argsort(order)

    def _balance(self, steps: int) -> None:
        """Time each sub-env, regroup by cost, rebuild every worker's envs fresh."""
        for k in range(len(self._pipes)):
            self._send(k, ("probe", steps))
        costs = np.zeros(self.num_envs)
        for index, part in zip(self._index, self._gather(), strict=True):
            costs[index] = part
        self.step_costs = costs.tolist()
        self._set_groups(balanced_groups(self.step_costs, len(self._pipes)))
        for k, group in enumerate(self.groups):
            self._send(k, ("regroup", group))
        self._gather()

    @property
    def num_workers(self) -> int:
        return len(self._procs)

    def _gather(self) -> list[Any]:
        return gather_replies(self._pipes, self._died, lambda k: f"sub-envs {self.groups[k]}")

    def _send(self, k: int, message: tuple[str, Any]) -> None:
        try:
            self._pipes[k].send(message)
        except OSError as exc:  # BrokenPipeError, ConnectionResetError: it is gone
            raise self._died(k) from exc

    def _died(self, k: int) -> MtrlError:
        """Worker ``k`` is gone: which one, its sub-envs, and how it ended."""
        proc = self._procs[k]
        how = exit_description(proc)
        return MtrlError(
            f"env worker {k} (pid {proc.pid}, sub-envs {self.groups[k]}) {how}; a run "
            "resumes from its last checkpoint: mtrl train --resume RUN_DIR"
        )

    def _in_order(self, value: Any) -> Any:
        """Concatenated per-worker results back in sub-env order."""
        return value if self._inverse is None else reorder(value, self._inverse)

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
        for k, group in enumerate(self.groups):
            self._send(k, ("reset", {"seed": [seeds[i] for i in group], "options": options}))
        infos = self._gather()
        return self._observations(), self._in_order(merge_infos(infos, self._sizes))

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions)
        for k, index in enumerate(self._index):
            self._send(k, ("step", actions[index]))
        results = self._gather()
        rewards = self._in_order(np.concatenate([r[0] for r in results]))
        terms = self._in_order(np.concatenate([r[1] for r in results]))
        truncs = self._in_order(np.concatenate([r[2] for r in results]))
        info = self._in_order(merge_infos([r[3] for r in results], self._sizes))
        return self._observations(), rewards, terms, truncs, info

    def _per_env(self, parts: list[Any]) -> tuple[Any, ...]:
        flat = [x for part in parts for x in part]
        if self._inverse is None:
            return tuple(flat)
        return tuple(flat[k] for k in self._inverse.tolist())

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        for k in range(len(self._pipes)):
            self._send(k, ("call", (name, args, kwargs)))
        return self._per_env(self._gather())

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return self.call(name)

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | object) -> None:
        if not isinstance(values, list | tuple):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"set_attr needs {self.num_envs} values, got {len(values)}")
        for k, group in enumerate(self.groups):
            self._send(k, ("set_attr", (name, [values[i] for i in group])))
        self._gather()

    def render(self) -> tuple[Any, ...] | None:
        for k in range(len(self._pipes)):
            self._send(k, ("render", None))
        frames = self._gather()
        if all(f is None for f in frames):
            return None
        return self._per_env(
            [f if f is not None else [None] * n for f, n in zip(frames, self._sizes, strict=True)]
        )

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
