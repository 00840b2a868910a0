"""What an off-policy training loop consults: components with named hooks.

A component (demonstration replay, reward normalisation, a curriculum, a continual
method's task switches, self-imitation, ...) overrides the hooks it needs; the loop
calls each hook on every component in the order they were given, so several
components of one hook compose. ``checkpoint``/``restore`` hold a component's part of
the run's checkpoint, so saving and resuming iterate over components instead of naming
them. Terms inside the SAC update (loss penalties, gradient hooks, acting) are
:class:`mtrl.agents.sac.UpdateExtension`s.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from mtrl.agents.replay import Batch, TaskReplayBuffer


class Step(NamedTuple):
    """One vector-env step as the loop stores it (per sub-env rows)."""

    obs: np.ndarray
    action: np.ndarray  # the actor's [-1, 1] action
    reward: np.ndarray
    next_obs: np.ndarray  # the final observation where an episode ended
    terminated: np.ndarray
    done: np.ndarray  # terminated or truncated
    task_ids: np.ndarray


class LoopComponent:
    """A part of an off-policy run; every hook defaults to doing nothing."""

    def before_loop(self) -> tuple[int, list[dict[str, Any]]] | None:
        """A phase before RL on a fresh run (cloning, DAgger, a warm start): the env
        steps it took and its last evaluation rows; None when it did nothing."""
        return None

    def explores(self, steps: int) -> bool | None:
        """Whether the loop takes random actions now (None: no opinion)."""
        return None

    def store(self, step: Step) -> Step:
        """The step as it goes into replay (SQIL zeroes the agent's rewards)."""
        return step

    def observe(self, step: Step, info: dict[str, Any]) -> None:
        """Every env step, with the env's raw reward and infos."""

    def after_env_step(self, steps: int, buffer: TaskReplayBuffer) -> None:
        """After ``steps`` env steps in all (task switches)."""

    def mix(self, batch: Batch, steps: int, generator: torch.Generator) -> Batch:
        """A training batch as the update sees it (demonstration rows, scaled rewards)."""
        return batch

    def before_update(self, steps: int) -> None:
        """Before each update (schedules of weights)."""

    def update_metrics(self) -> dict[str, float]:
        """Numbers of the last update (logged with the SAC losses)."""
        return {}

    def log_metrics(self) -> dict[str, Any]:
        """Numbers for the log row."""
        return {}

    def finished(self) -> bool:
        """True to end the run before its budget (every task mastered)."""
        return False

    def checkpoint(self) -> dict[str, Any]:
        """This component's entries of the checkpoint."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back :meth:`checkpoint`'s entries from a saved checkpoint."""
