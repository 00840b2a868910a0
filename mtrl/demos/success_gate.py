"""A cloning weight per task that follows the task's training success instead of the
clock (``[demos.regulariser] follow = "success"``).

With a clock, every task's cloning weight falls from ``weight`` to ``final_weight`` over
``decay_steps`` env steps whatever the task does; on MT1 push and pick-place (seed 0 of
docs/results/finetune-mt1.md) success held at 0.9-1.0 while the weight was 0.4-0.7 and
fell once it reached its floor. Here each task runs its own clock, forwards while its
training success holds and backwards while it falls, in the spirit of adaptive BC
regularisation (Zhao et al. 2022: lower the cloning weight while performance holds,
raise it when it drops): a task's clock advances while the share of successes in its
last ``window`` training episodes is at least its best such share so far minus
``tolerance``, and runs back (raising the weight, at most to ``weight``) while it is
below. Until a task has finished ``window`` episodes its clock runs forwards, as the
plain schedule would. Only episodes begun at or after ``learning_starts`` count (the
random-action episodes before it say nothing about the actor).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def window_share(successes: list[float], window: int) -> float | None:
    """The share of successes in the last ``window`` episodes; None before ``window``
    episodes have finished."""
    if len(successes) < window:
        return None
    return float(np.mean(successes[-window:]))


def holds(share: float | None, best: float, tolerance: float) -> bool:
    """Whether a task's success holds: no full window yet, or its share is within
    ``tolerance`` of the best share it has had."""
    return share is None or share >= best - tolerance


class SuccessGate:
    """Per task: the successes of its training episodes, its best window share, and its
    own clock (env steps of the weight's decay it has advanced, in [0, ``decay_steps``]).
    Per sub-env: the env step its current episode began."""

    def __init__(
        self,
        num_tasks: int,
        num_envs: int,
        decay_steps: int,
        learning_starts: int,
        window: int,
        tolerance: float,
    ) -> None:
        self.decay_steps, self.learning_starts = decay_steps, learning_starts
        self.window, self.tolerance = window, tolerance
        self.successes: list[list[float]] = [[] for _ in range(num_tasks)]
        self.best = [0.0] * num_tasks
        self.clock = [0] * num_tasks
        self.began = [0] * num_envs  # env step at which each sub-env's episode began
        self.steps = 0  # env steps before the vector step being recorded
        self.advanced_to = learning_starts  # env step up to which the clocks have moved

    def record(self, done: np.ndarray, task_ids: np.ndarray, success: np.ndarray) -> None:
        """One vector step (taken at ``self.steps``): each episode that ended and began
        after learning started adds its success to its task."""
        for i in np.flatnonzero(done):
            if self.began[i] >= self.learning_starts:
                task = int(task_ids[i])
                self.successes[task].append(float(success[i]))
                share = window_share(self.successes[task], self.window)
                if share is not None:
                    self.best[task] = max(self.best[task], share)
            self.began[i] = self.steps + len(done)

    def advance(self, steps: int) -> None:
        """Move each task's clock by the env steps since the last call: forwards where
        its success holds, backwards where it fell."""
        delta = steps - self.advanced_to
        if delta <= 0:
            return
        self.advanced_to = steps
        for task, successes in enumerate(self.successes):
            share = window_share(successes, self.window)
            sign = 1 if holds(share, self.best[task], self.tolerance) else -1
            self.clock[task] = min(self.decay_steps, max(0, self.clock[task] + sign * delta))

    def state_dict(self) -> dict[str, Any]:
        return {
            "successes": [list(s) for s in self.successes],
            "best": list(self.best),
            "clock": list(self.clock),
            "began": list(self.began),
            "steps": self.steps,
            "advanced_to": self.advanced_to,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.successes = [list(s) for s in state["successes"]]
        self.best, self.clock = list(state["best"]), list(state["clock"])
        self.began = list(state["began"])
        self.steps, self.advanced_to = int(state["steps"]), int(state["advanced_to"])
