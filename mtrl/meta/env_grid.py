"""The environments of a meta-RL sampler: a flat list of a family's envs (unwrapped:
the sampler enforces the horizon), in this process or spread over worker processes.

Both hosts answer the same calls for all envs at once: set their tasks (remaking an
env whose class differs, as Meta-World's ML benchmarks need), reset them with given
seeds, step the running ones, and save or restore each env's RNGs. Env ``k`` behaves
the same wherever it lives (its RNG is its own and its seed comes from the sampler),
so a run gives the same numbers with any number of workers.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.vector.utils import CloudpickleWrapper

from mtrl.envs.workers import exit_description, gather_replies, slices
from mtrl.errors import MtrlError
from mtrl.tasks import Task, TaskFamily

RngStates = list[dict[str, Any] | None]


def _rng_holders(env: Any) -> list[Any]:
    """The environment and the one it wraps (Meta-World's), each with its own RNG."""
    inner = getattr(env, "_env", None)
    return [env] if inner is None else [env, inner]


def env_rng_states(env: Any) -> RngStates:
    """The bit-generator states of an environment's RNGs (None where never drawn)."""
    out = []
    for holder in _rng_holders(env):
        rng = getattr(holder, "_np_random", None)
        out.append(None if rng is None else rng.bit_generator.state)
    return out


def set_env_rng_states(env: Any, states: RngStates) -> None:
    for holder, state in zip(_rng_holders(env), states, strict=True):
        if state is not None:
            rng = np.random.Generator(getattr(np.random, state["bit_generator"])())
            rng.bit_generator.state = state
            holder._np_random = rng


@dataclass
class GridStep:
    """One step of every env: rows of envs that were not running are zeros."""

    obs: np.ndarray  # [N, obs] float32
    rewards: np.ndarray  # [N] float64
    terminated: np.ndarray  # [N] bool
    ended: np.ndarray  # [N] bool: terminated or truncated
    successes: np.ndarray  # [N] float64: info["success"], 0 where absent
    reports_success: bool  # some running env's info had "success"

    @staticmethod
    def concat(parts: Sequence[GridStep]) -> GridStep:
        return GridStep(
            np.concatenate([p.obs for p in parts]),
            np.concatenate([p.rewards for p in parts]),
            np.concatenate([p.terminated for p in parts]),
            np.concatenate([p.ended for p in parts]),
            np.concatenate([p.successes for p in parts]),
            any(p.reports_success for p in parts),
        )


class EnvGrid:
    """``count`` environments of ``family`` in this process."""

    def __init__(self, family: TaskFamily, count: int) -> None:
        self.family = family
        self.envs: list[Any] = [family.make_env().unwrapped for _ in range(count)]
        first = self.envs[0]
        self.obs_dim = int(np.prod(first.observation_space.shape))
        self.act_dim = int(np.prod(first.action_space.shape))
        self.low, self.high = first.action_space.low, first.action_space.high

    def set_tasks(self, tasks: Sequence[Task]) -> list[bool]:
        """Env ``k`` to ``tasks[k]``; True where an env of another class was remade."""
        remade = []
        for k, task in enumerate(tasks):
            env = self.envs[k]
            wanted = dict(task.params).get("env_name")
            fresh = wanted is not None and getattr(env, "env_name", wanted) != wanted
            if fresh:
                env.close()
                self.envs[k] = env = self.family.make_env(task).unwrapped
            env.set_task(task)
            remade.append(fresh)
        return remade

    def reset(self, seeds: Sequence[int | None]) -> tuple[np.ndarray, bool]:
        """First observations ``[N, obs]`` and whether any env reports success."""
        obs = np.empty((len(self.envs), self.obs_dim), dtype=np.float32)
        reports = False
        for k, (env, seed) in enumerate(zip(self.envs, seeds, strict=True)):
            o, info = env.reset(seed=seed)
            obs[k] = np.asarray(o, dtype=np.float32).ravel()
            reports |= "success" in info
        return obs, reports

    def step(self, actions: np.ndarray, running: np.ndarray) -> GridStep:
        """Step the envs where ``running`` with their rows of ``actions``."""
        n = len(self.envs)
        out = GridStep(np.zeros((n, self.obs_dim), np.float32), np.zeros(n), np.zeros(n, bool),
                       np.zeros(n, bool), np.zeros(n), False)  # fmt: skip
        for k in np.flatnonzero(running):
            o, r, terminated, truncated, info = self.envs[k].step(actions[k])
            out.obs[k] = np.asarray(o, dtype=np.float32).ravel()
            out.rewards[k], out.terminated[k] = r, terminated
            out.ended[k] = terminated or truncated
            out.successes[k] = float(info.get("success", 0.0))
            out.reports_success |= "success" in info
        return out

    def rng_states(self) -> list[RngStates]:
        return [env_rng_states(env) for env in self.envs]

    def set_rng_states(self, states: Sequence[RngStates]) -> None:
        for env, saved in zip(self.envs, states, strict=True):
            set_env_rng_states(env, saved)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _serve(family: CloudpickleWrapper, count: int, pipe: Any) -> None:
    """A worker: an :class:`EnvGrid` answering the parent's calls until "close". Stop
    signals are the parent's to handle (it checkpoints, asking for the envs' RNGs)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    grid = EnvGrid(family.fn, count)  # type: ignore[arg-type]
    pipe.send((True, (grid.obs_dim, grid.act_dim, grid.low, grid.high)))
    try:
        while True:
            name, args = pipe.recv()
            if name == "close":
                break
            try:
                pipe.send((True, getattr(grid, name)(*args)))
            except Exception as exc:  # the parent re-raises it, naming the worker
                pipe.send((False, f"{type(exc).__name__}: {exc}"))
    except EOFError:  # the parent is gone
        pass
    finally:
        grid.close()


class WorkerEnvGrid:
    """The same envs in ``workers`` processes, each holding a contiguous slice."""

    def __init__(self, family: TaskFamily, count: int, workers: int) -> None:
        ctx: Any = mp.get_context("spawn")
        self.parts = slices(count, workers)
        self._pipes, self._procs = [], []
        for part in self.parts:
            parent, child = ctx.Pipe()
            args = (CloudpickleWrapper(family), part.stop - part.start, child)  # type: ignore[arg-type]
            proc = ctx.Process(target=_serve, args=args, daemon=True)
            proc.start()
            child.close()
            self._pipes.append(parent)
            self._procs.append(proc)
        self.obs_dim, self.act_dim, self.low, self.high = self._gather()[0]

    def _gather(self) -> list[Any]:
        return gather_replies(self._pipes, self._died, lambda k: f"envs {self._span(k)}")

    def _call(self, name: str, per_part: Sequence[tuple[Any, ...]]) -> list[Any]:
        for k, args in enumerate(per_part):
            try:
                self._pipes[k].send((name, args))
            except OSError as exc:  # BrokenPipeError: it is gone
                raise self._died(k) from exc
        return self._gather()

    def _span(self, k: int) -> str:
        return f"{self.parts[k].start}..{self.parts[k].stop - 1}"

    def _died(self, k: int) -> MtrlError:
        how = exit_description(self._procs[k])
        return MtrlError(
            f"env worker {k} (pid {self._procs[k].pid}, envs {self._span(k)}) {how}; a run "
            "resumes from its last checkpoint: mtrl train --resume RUN_DIR"
        )

    def _split(self, rows: Sequence[Any]) -> list[tuple[Any, ...]]:
        return [(rows[p],) for p in self.parts]

    def set_tasks(self, tasks: Sequence[Task]) -> list[bool]:
        return [f for part in self._call("set_tasks", self._split(list(tasks))) for f in part]

    def reset(self, seeds: Sequence[int | None]) -> tuple[np.ndarray, bool]:
        parts = self._call("reset", self._split(list(seeds)))
        return np.concatenate([o for o, _ in parts]), any(r for _, r in parts)

    def step(self, actions: np.ndarray, running: np.ndarray) -> GridStep:
        args = [(actions[p], running[p]) for p in self.parts]
        return GridStep.concat(self._call("step", args))

    def rng_states(self) -> list[RngStates]:
        return [s for part in self._call("rng_states", [()] * len(self.parts)) for s in part]

    def set_rng_states(self, states: Sequence[RngStates]) -> None:
        self._call("set_rng_states", self._split(list(states)))

    def close(self) -> None:
        for pipe, proc in zip(self._pipes, self._procs, strict=True):
            with contextlib.suppress(OSError):  # already gone
                pipe.send(("close", ()))
            proc.join(timeout=5.0)
            if proc.is_alive():
                proc.kill()
            pipe.close()


Grid = EnvGrid | WorkerEnvGrid


def make_env_grid(family: TaskFamily, count: int, workers: int) -> Grid:
    """``count`` envs here (``workers`` 0 or 1) or in up to ``workers`` processes."""
    if workers <= 1 or count < 2:
        return EnvGrid(family, count)
    return WorkerEnvGrid(family, count, workers)
