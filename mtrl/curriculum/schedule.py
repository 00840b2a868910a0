"""The curriculum a training loop consults: which task each sub-env runs next.

:class:`Curriculum` keeps per-task statistics (env steps, recent episode scores, fast
and slow moving averages), unlocks tasks by the configured rule and samples the next
task of a sub-env at each episode boundary. The multi-task vector env calls
:meth:`record_steps` at each vector step, and :meth:`record_episode` and
:meth:`next_task` from its sub-envs (see :class:`mtrl.envs.slots.TaskSlot`); the
loop saves :meth:`state_dict` in its checkpoints so a resumed run makes the same
choices.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from mtrl.curriculum.config import CurriculumConfig
from mtrl.curriculum.graph import sinks, topological_order
from mtrl.curriculum.progress import (
    ema,
    learning_progress,
    normalized_score,
    progress_probabilities,
)
from mtrl.errors import ConfigError


class Curriculum:
    """Unlock rules and task sampling over ``num_tasks`` tasks (stable ids 0..n-1)."""

    def __init__(
        self,
        config: CurriculumConfig,
        num_tasks: int,
        seed: int,
        *,
        score_bounds: Sequence[tuple[float, float]] | None = None,
    ) -> None:
        self.config = config
        self.num_tasks = num_tasks
        self.prereqs = config.graph(num_tasks)
        self.order = topological_order(self.prereqs)
        self.targets = sinks(self.prereqs)
        if config.mastery_metric == "return":
            if score_bounds is None or len(score_bounds) != num_tasks:
                raise ConfigError("a return-based curriculum needs (random, target) per task")
            for t, (low, high) in enumerate(score_bounds):
                if not high > low:
                    raise ConfigError(
                        f"curriculum.target_return for task {t} ({high:.3g}) must exceed "
                        f"the random policy's return ({low:.3g})"
                    )
        self.score_bounds = list(score_bounds) if score_bounds is not None else None
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC0]))
        n = num_tasks
        self.steps = np.zeros(n, dtype=np.int64)
        self.episodes = np.zeros(n, dtype=np.int64)
        self.recent: list[deque[float]] = [deque(maxlen=config.mastery_window) for _ in range(n)]
        self.fast = np.zeros(n)
        self.slow = np.zeros(n)
        self.completed = np.zeros(n, dtype=bool)
        self.mastered_at = np.full(n, -1, dtype=np.int64)  # total env steps when mastered
        self.unlocked_at = np.full(n, -1, dtype=np.int64)
        self.total_steps = 0
        self._unlock()

    # -- what the sub-envs report -------------------------------------------------
    def record_steps(self, task_ids: np.ndarray) -> None:
        """One env step of each sub-env, running ``task_ids`` (counted as the vector
        step starts, so a sub-env resetting within it sees the others' steps too)."""
        counts = np.bincount(np.asarray(task_ids, dtype=np.int64), minlength=self.num_tasks)
        self.steps += counts
        self.total_steps += int(counts.sum())
        if self.config.unlock in ("budget", "either"):
            spent = (~self.completed) & (self.steps >= self.config.budget)
            if spent.any():
                self.completed |= spent
                self._unlock()

    @property
    def needs_score(self) -> bool:
        """Whether any decision reads episode scores (not so for budget-only chains)."""
        cfg = self.config
        return (
            cfg.unlock in ("mastery", "either")
            or cfg.sampler == "learning_progress"
            or cfg.stop_on_mastery
        )

    def record_episode(
        self, task: int, episode_return: float, success: float, length: int = 0
    ) -> None:
        """A finished training episode of ``task``: update its score statistics."""
        if math.isnan(success) and self.config.mastery_metric == "success" and not self.needs_score:
            self.episodes[task] += 1
            return
        score = self.score(task, episode_return, success)
        started = self.episodes[task] > 0
        self.fast[task] = ema(self.fast[task], score, self.config.lp_fast, bool(started))
        self.slow[task] = ema(self.slow[task], score, self.config.lp_slow, bool(started))
        self.episodes[task] += 1
        recent = self.recent[task]
        recent.append(score)
        window = self.config.mastery_window
        if (
            self.mastered_at[task] < 0
            and len(recent) == window
            and float(np.mean(recent)) >= self.config.mastery_threshold
        ):
            self.mastered_at[task] = self.total_steps
            if self.config.unlock in ("mastery", "either") and not self.completed[task]:
                self.completed[task] = True
                self._unlock()

    def score(self, task: int, episode_return: float, success: float) -> float:
        if self.config.mastery_metric == "success":
            if math.isnan(success):
                raise ConfigError(
                    f"task {task} reports no success; set curriculum.mastery_metric = "
                    "'return' with curriculum.target_return"
                )
            return float(success)
        assert self.score_bounds is not None
        low, high = self.score_bounds[task]
        return normalized_score(episode_return, low, high)

    # -- what the sub-envs ask ------------------------------------------------------
    @property
    def unlocked(self) -> np.ndarray:
        return self.unlocked_at >= 0

    def next_task(self, slot: int) -> int:
        """The task sub-env ``slot`` runs in its next episode (always an unlocked one)."""
        cfg = self.config
        unlocked = np.flatnonzero(self.unlocked)
        done = np.flatnonzero(self.completed & self.unlocked)
        if cfg.rehearsal > 0.0 and len(done) and self.rng.random() < cfg.rehearsal:
            return int(self.rng.choice(done))
        if cfg.sampler == "sequential":
            frontier = np.flatnonzero(self.unlocked & ~self.completed)
            if not len(frontier):  # everything completed: stay on the targets
                frontier = np.array([t for t in self.targets if self.unlocked[t]])
            return int(self.rng.choice(frontier))
        if cfg.sampler == "uniform":
            return int(self.rng.choice(unlocked))
        if cfg.sampler == "targets":
            return int(self.rng.choice(self.targets))
        lp = learning_progress(self.fast[unlocked], self.slow[unlocked])
        return int(self.rng.choice(unlocked, p=progress_probabilities(lp, cfg.lp_epsilon)))

    def retired(self, task: int) -> bool:
        """``task`` will never be sampled again (a finished task of a sequence without
        rehearsal): sub-envs running it end their episode now (truncation)."""
        cfg = self.config
        if not self.completed[task] or cfg.sampler != "sequential" or cfg.rehearsal > 0:
            return False
        return bool((self.unlocked & ~self.completed).any())

    # -- state ----------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """Every target task is mastered (runs with ``stop_on_mastery`` end here)."""
        return bool(all(self.mastered_at[t] >= 0 for t in self.targets))

    def _unlock(self) -> None:
        for j in self.order:
            if self.unlocked_at[j] >= 0:
                continue
            if self.config.unlock == "all" or all(self.completed[p] for p in self.prereqs[j]):
                self.unlocked_at[j] = self.total_steps

    def summary(self, labels: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Per task: steps and episodes trained, when it unlocked and was mastered, and
        the mean score of its last episodes."""
        rows = []
        for t in range(self.num_tasks):
            recent = self.recent[t]
            rows.append(
                {
                    "task_id": t,
                    "task": labels[t] if labels is not None else str(t),
                    "target": t in self.targets,
                    "steps": int(self.steps[t]),
                    "episodes": int(self.episodes[t]),
                    "unlocked_at": int(self.unlocked_at[t]),
                    "mastered_at": int(self.mastered_at[t]),
                    "recent_score": float(np.mean(recent)) if recent else float("nan"),
                }
            )
        return rows

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "steps": self.steps.copy(),
            "episodes": self.episodes.copy(),
            "recent": [list(r) for r in self.recent],
            "fast": self.fast.copy(),
            "slow": self.slow.copy(),
            "completed": self.completed.copy(),
            "mastered_at": self.mastered_at.copy(),
            "unlocked_at": self.unlocked_at.copy(),
            "total_steps": self.total_steps,
            "score_bounds": self.score_bounds,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        for key in ("steps", "episodes", "fast", "slow", "completed", "mastered_at"):
            setattr(self, key, np.array(state[key]))
        self.unlocked_at = np.array(state["unlocked_at"])
        window = self.config.mastery_window
        self.recent = [deque(r, maxlen=window) for r in state["recent"]]
        self.total_steps = int(state["total_steps"])
        self.score_bounds = state["score_bounds"]
