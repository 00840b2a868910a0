"""Episode batches for meta-RL: ``n`` episodes on each of a batch of tasks at once.

Each task gets its own ``n`` environments (the family's real env, unwrapped, so the
horizon is enforced here). All ``tasks x n`` environments step in lockstep so that
one policy call serves every task with its own (adapted) parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtrl.errors import ConfigError
from mtrl.tasks import ParametricFamily, Task, TaskFamily


def meta_family(env: str, kind: str) -> TaskFamily:
    """The family ``env`` names, if meta-RL can train on it: one with held-out tasks,
    a parametric family (held-out tasks are fresh draws) or a Meta-World ML benchmark
    (its test split, checked apart from its training split)."""
    from mtrl.envs import get_family

    family = get_family(env)
    if isinstance(family, ParametricFamily):
        return family
    if getattr(family, "kind", None) == "ml":
        check_held_out(family.shared_goals(), env)  # type: ignore[attr-defined]
        return family
    raise ConfigError(
        f"env = {env!r} is a suite of fixed tasks, with none held out; {kind} takes a "
        "parametric family such as navigation2d, halfcheetah-vel or halfcheetah-dir, or a "
        "Meta-World ML benchmark (ML1:<env>, ML10, ML45)"
    )


def check_held_out(shared: int, env: str) -> None:
    """Held-out tasks must not be training tasks: a test split that shares ``shared``
    tasks with training would measure memory, not adaptation."""
    if shared:
        raise ConfigError(
            f"env = {env!r}: {shared} of its held-out test tasks are also training tasks; "
            "meta-RL needs a test split apart from training"
        )


def held_out_tasks(family: TaskFamily, n: int, rng: np.random.Generator) -> list[Task]:
    """``n`` held-out tasks: fresh draws of a parametric family, or draws from a
    Meta-World ML benchmark's test split (without replacement while there are enough)."""
    if isinstance(family, ParametricFamily):
        return family.sample_tasks(n, rng)
    pool = family.tasks("test")
    idx = rng.choice(len(pool), size=n, replace=n > len(pool))
    return [pool[int(i)] for i in idx]


def family_horizon(family: TaskFamily, env: str, horizon: int) -> int:
    """``horizon``, or (0) the family env's registered time limit."""
    if horizon:
        return horizon
    probe = family.make_env()
    steps = probe.spec.max_episode_steps if probe.spec is not None else None
    probe.close()
    if not steps:
        raise ConfigError(f"{env!r} has no registered time limit; set horizon")
    return int(steps)


@dataclass
class Episodes:
    """Time-major tensors: ``obs [H, T, n, obs]``, ``actions [H, T, n, act]``, ``rewards``
    and ``masks`` ``[H, T, n]`` (mask 1 while the episode runs); sampled episodes also
    hold each step's next observation and whether it terminated the episode (the
    horizon truncates, it does not terminate)."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    masks: Tensor
    next_obs: Tensor | None = None
    terminals: Tensor | None = None
    successes: Tensor | None = None  # info["success"] of each step, where envs report it

    def episode_returns(self) -> Tensor:
        """Undiscounted return of each episode, ``[T, n]``."""
        return (self.rewards * self.masks).sum(dim=0)

    def episode_successes(self) -> Tensor | None:
        """1 where an episode succeeded at any step (Meta-World's rule), ``[T, n]``;
        None where the env reports no success."""
        if self.successes is None:
            return None
        return (self.successes * self.masks).amax(dim=0)


def _rng_holders(env: Any) -> list[Any]:
    """The environment and the one it wraps (Meta-World's), each with its own RNG."""
    inner = getattr(env, "_env", None)
    return [env] if inner is None else [env, inner]


def env_rng_states(env: Any) -> list[dict[str, Any] | None]:
    """The bit-generator states of an environment's RNGs (None where never drawn)."""
    out = []
    for holder in _rng_holders(env):
        rng = getattr(holder, "_np_random", None)
        out.append(None if rng is None else rng.bit_generator.state)
    return out


def set_env_rng_states(env: Any, states: list[dict[str, Any] | None]) -> None:
    for holder, state in zip(_rng_holders(env), states, strict=True):
        if state is not None:
            rng = np.random.Generator(getattr(np.random, state["bit_generator"])())
            rng.bit_generator.state = state
            holder._np_random = rng


ActFn = Callable[[Tensor], Tensor]  # obs [T, n, obs] -> actions [T, n, act]
ObserveFn = Callable[[Tensor, Tensor], None]  # rewards [T, n], running before the step [T, n]


class EpisodeSampler:
    """``episodes_per_task`` environments for each of ``num_tasks`` task slots."""

    def __init__(
        self,
        family: TaskFamily,
        num_tasks: int,
        episodes_per_task: int,
        horizon: int,
        seed: int,
    ) -> None:
        self.family = family
        self.horizon = horizon
        self.n = episodes_per_task
        self.envs: list[list[Any]] = [
            [family.make_env().unwrapped for _ in range(episodes_per_task)]
            for _ in range(num_tasks)
        ]
        first = self.envs[0][0]
        self.obs_dim = int(np.prod(first.observation_space.shape))
        self.act_dim = int(np.prod(first.action_space.shape))
        self.low = first.action_space.low
        self.high = first.action_space.high
        self._rng = np.random.default_rng(seed)
        # each env's seed for its next reset: set at first and when an env is remade
        self._seeds: list[list[int | None]] = [
            [self._draw_seed() for _ in range(episodes_per_task)] for _ in range(num_tasks)
        ]
        self._reports_success = False
        self._tasks: list[Task] | None = None

    def state_dict(self) -> dict[str, Any]:
        """What the next episodes depend on besides the policy: each slot's task, each
        environment's RNG and pending seed, the stream that seeds remade environments
        (taken between ``sample`` calls, when every environment is about to reset)."""
        return {
            "tasks": self._tasks,
            "rng": self._rng.bit_generator.state,
            "seeds": [list(row) for row in self._seeds],
            "env_rngs": [[env_rng_states(env) for env in row] for row in self.envs],
            "reports_success": self._reports_success,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["tasks"] is not None:
            self.set_tasks(state["tasks"])  # environments of the saved classes
        self._rng.bit_generator.state = state["rng"]
        self._seeds = [list(row) for row in state["seeds"]]
        for row, rngs in zip(self.envs, state["env_rngs"], strict=True):
            for env, saved in zip(row, rngs, strict=True):
                set_env_rng_states(env, saved)
        self._reports_success = bool(state["reports_success"])

    def _draw_seed(self) -> int:
        return int(self._rng.integers(0, 2**31 - 1))

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        """Each slot's environments to its task; an environment of another class (a
        Meta-World benchmark of many classes) is remade for the task, freshly seeded."""
        if len(tasks) != len(self.envs):
            raise ValueError(f"sampler holds {len(self.envs)} task slots, got {len(tasks)} tasks")
        self._tasks = list(tasks)
        for i, (row, task) in enumerate(zip(self.envs, tasks, strict=True)):
            for j, env in enumerate(row):
                wanted = dict(task.params).get("env_name")
                if wanted is not None and getattr(env, "env_name", wanted) != wanted:
                    env.close()
                    row[j] = env = self.family.make_env(task).unwrapped
                    self._seeds[i][j] = self._draw_seed()
                env.set_task(task)

    def _reset(self) -> np.ndarray:
        obs = np.empty((len(self.envs), self.n, self.obs_dim), dtype=np.float32)
        for i, row in enumerate(self.envs):
            for j, env in enumerate(row):
                o, info = env.reset(seed=self._seeds[i][j])
                self._seeds[i][j] = None
                obs[i, j] = np.asarray(o, dtype=np.float32).ravel()
                self._reports_success |= "success" in info
        return obs

    @torch.no_grad()
    def sample(self, act: ActFn, observe: ObserveFn | None = None) -> Episodes:
        """One episode per environment (``horizon`` steps at most); ``observe`` (a
        recurrent policy's) sees each step's rewards and which environments ran it."""
        tasks, n, h = len(self.envs), self.n, self.horizon
        obs_buf = np.zeros((h, tasks, n, self.obs_dim), dtype=np.float32)
        act_buf = np.zeros((h, tasks, n, self.act_dim), dtype=np.float32)
        rew_buf = np.zeros((h, tasks, n), dtype=np.float32)
        mask_buf = np.zeros((h, tasks, n), dtype=np.float32)
        next_buf = np.zeros_like(obs_buf)
        term_buf = np.zeros_like(mask_buf)
        success_buf = np.zeros_like(mask_buf)
        obs = self._reset()
        alive = np.ones((tasks, n), dtype=bool)
        for t in range(h):
            actions = act(torch.from_numpy(obs)).numpy()
            obs_buf[t], act_buf[t], mask_buf[t] = obs, actions, alive
            clipped = np.clip(actions, self.low, self.high)
            for i, row in enumerate(self.envs):
                for j, env in enumerate(row):
                    if not alive[i, j]:
                        continue
                    o, r, terminated, truncated, info = env.step(clipped[i, j])
                    rew_buf[t, i, j], term_buf[t, i, j] = r, terminated
                    success_buf[t, i, j] = float(info.get("success", 0.0))
                    self._reports_success |= "success" in info
                    obs[i, j] = np.asarray(o, dtype=np.float32).ravel()
                    if terminated or truncated:
                        alive[i, j] = False
            next_buf[t] = obs
            if observe is not None:
                observe(torch.from_numpy(rew_buf[t]), torch.from_numpy(mask_buf[t] > 0))
            if not alive.any():
                break
        return Episodes(
            torch.from_numpy(obs_buf),
            torch.from_numpy(act_buf),
            torch.from_numpy(rew_buf),
            torch.from_numpy(mask_buf),
            torch.from_numpy(next_buf),
            torch.from_numpy(term_buf),
            torch.from_numpy(success_buf) if self._reports_success else None,
        )

    def close(self) -> None:
        for row in self.envs:
            for env in row:
                env.close()
