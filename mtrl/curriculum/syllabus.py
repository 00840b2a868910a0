"""Syllabus (syllabus-rl) curricula driving mtrl's task choice.

:class:`SyllabusScheduler` is a :class:`~mtrl.envs.slots.TaskScheduler`: each sub-env
of a multi-task vector env built with it asks the Syllabus curriculum for its next
task (``curriculum.sample(1)``, a task index in a ``DiscreteTaskSpace`` over the env's
tasks) and reports every finished episode (``update_on_episode`` with the return,
length and success as progress), so any of Syllabus's curricula (sequential,
learning progress, prioritised level replay, ...) choose the tasks while mtrl's
envs, agents and run directories do the rest::

    from syllabus.curricula import SequentialCurriculum
    from syllabus.task_space import DiscreteTaskSpace

    seq = SequentialCurriculum([0, 1, 2], ["episodes>=50", "episodes>=50"],
                               task_space=DiscreteTaskSpace(3))
    env = make_multitask_env(cfg, scheduler=SyllabusScheduler(seq))

Syllabus keeps its own state; mtrl's checkpoints do not hold it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mtrl.errors import ConfigError


class SyllabusScheduler:
    """A Syllabus curriculum as the task scheduler of a multi-task vector env."""

    def __init__(self, curriculum: Any) -> None:
        if getattr(curriculum, "requires_step_updates", False):
            raise ConfigError(
                f"{type(curriculum).__name__} needs per-step updates, which mtrl's "
                "sub-envs do not send; use a curriculum updated per episode"
            )
        self.curriculum = curriculum

    def next_task(self, slot: int) -> int:
        return int(np.asarray(self.curriculum.sample(1)).ravel()[0])

    def record_steps(self, task_ids: np.ndarray) -> None:
        """Syllabus counts steps through the episode lengths it is told."""

    def record_episode(
        self, task: int, episode_return: float, success: float, length: int = 0
    ) -> None:
        progress = 0.0 if np.isnan(success) else float(success)
        self.curriculum.update_on_episode(episode_return, length, task, progress)

    def retired(self, task: int) -> bool:
        return False
