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
from mtrl.meta.env_grid import make_env_grid
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


ActFn = Callable[[Tensor], Tensor]  # obs [T, n, obs] -> actions [T, n, act]
ObserveFn = Callable[[Tensor, Tensor], None]  # rewards [T, n], running before the step [T, n]


class EpisodeSampler:
    """``episodes_per_task`` environments for each of ``num_tasks`` task slots, here or
    (``workers`` > 1) in worker processes, with the same episodes either way."""

    def __init__(
        self,
        family: TaskFamily,
        num_tasks: int,
        episodes_per_task: int,
        horizon: int,
        seed: int,
        workers: int = 0,
    ) -> None:
        self.family = family
        self.horizon = horizon
        self.num_tasks, self.n = num_tasks, episodes_per_task
        self.grid = make_env_grid(family, num_tasks * episodes_per_task, workers)
        g = self.grid
        self.obs_dim, self.act_dim, self.low, self.high = g.obs_dim, g.act_dim, g.low, g.high
        self._rng = np.random.default_rng(seed)
        # each env's seed for its next reset (env k = slot k // n): set at first and
        # when an env is remade
        self._seeds: list[int | None] = [self._draw_seed() for _ in range(self._count)]
        self._reports_success = False
        self._tasks: list[Task] | None = None

    @property
    def _count(self) -> int:
        return self.num_tasks * self.n

    def state_dict(self) -> dict[str, Any]:
        """What the next episodes depend on besides the policy: each slot's task, each
        environment's RNG and pending seed, the stream that seeds remade environments
        (taken between ``sample`` calls, when every environment is about to reset)."""
        n, rngs = self.n, self.grid.rng_states()
        return {
            "tasks": self._tasks,
            "rng": self._rng.bit_generator.state,
            "seeds": [self._seeds[i : i + n] for i in range(0, self._count, n)],
            "env_rngs": [rngs[i : i + n] for i in range(0, self._count, n)],
            "reports_success": self._reports_success,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["tasks"] is not None:
            self.set_tasks(state["tasks"])  # environments of the saved classes
        self._rng.bit_generator.state = state["rng"]
        self._seeds = [s for row in state["seeds"] for s in row]
        self.grid.set_rng_states([r for row in state["env_rngs"] for r in row])
        self._reports_success = bool(state["reports_success"])

    def _draw_seed(self) -> int:
        return int(self._rng.integers(0, 2**31 - 1))

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        """Each slot's environments to its task; an environment of another class (a
        Meta-World benchmark of many classes) is remade for the task, freshly seeded."""
        if len(tasks) != self.num_tasks:
            raise ValueError(f"sampler holds {self.num_tasks} task slots, got {len(tasks)} tasks")
        self._tasks = list(tasks)
        remade = self.grid.set_tasks([t for t in tasks for _ in range(self.n)])
        for k in np.flatnonzero(remade):
            self._seeds[k] = self._draw_seed()

    def _reset(self) -> np.ndarray:
        obs, reports = self.grid.reset(self._seeds)
        self._seeds = [None] * self._count
        self._reports_success |= reports
        return obs.reshape(self.num_tasks, self.n, self.obs_dim)

    @torch.no_grad()
    def sample(self, act: ActFn, observe: ObserveFn | None = None) -> Episodes:
        """One episode per environment (``horizon`` steps at most); ``observe`` (a
        recurrent policy's) sees each step's rewards and which environments ran it."""
        tasks, n, h = self.num_tasks, self.n, self.horizon
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
            clipped = np.clip(actions, self.low, self.high).reshape(self._count, -1)
            out = self.grid.step(clipped, alive.ravel())
            ran = alive.copy()
            rew_buf[t][ran] = out.rewards.reshape(tasks, n)[ran]
            term_buf[t][ran] = out.terminated.reshape(tasks, n)[ran]
            success_buf[t][ran] = out.successes.reshape(tasks, n)[ran]
            obs[ran] = out.obs.reshape(tasks, n, -1)[ran]
            self._reports_success |= out.reports_success
            alive &= ~out.ended.reshape(tasks, n)
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
        self.grid.close()
