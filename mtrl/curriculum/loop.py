"""Curricula and continual task sequences as parts of an off-policy run.

:class:`CurriculumProgress` logs what a curriculum has unlocked and mastered, ends a
run once every target is mastered (``stop_on_mastery``) and checkpoints the
curriculum. :class:`TaskSwitches` is a continual run's side of the task sequence:
random actions at the start of each task, and at each switch the method keeps what it
needs of the finished task before its replay data and optimiser state are reset.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mtrl.agents.hooks import LoopComponent
from mtrl.agents.replay import TaskReplayBuffer
from mtrl.agents.sac import MTSAC
from mtrl.curriculum.methods import ContinualMethod
from mtrl.curriculum.schedule import Curriculum


class CurriculumProgress(LoopComponent):
    """The curriculum that re-binds the sub-envs, as the loop sees it."""

    def __init__(self, curriculum: Curriculum) -> None:
        self.curriculum = curriculum

    def log_metrics(self) -> dict[str, Any]:
        return {
            "tasks_unlocked": int(self.curriculum.unlocked.sum()),
            "tasks_mastered": int((self.curriculum.mastered_at >= 0).sum()),
        }

    def finished(self) -> bool:
        return bool(self.curriculum.config.stop_on_mastery and self.curriculum.finished)

    def checkpoint(self) -> dict[str, Any]:
        return {"curriculum": self.curriculum.state_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        self.curriculum.load_state_dict(state["curriculum"])


class TaskSwitches(LoopComponent):
    """A continual method across a sequence of ``num_tasks`` tasks of
    ``steps_per_task`` env steps each (the curriculum completes them in order)."""

    def __init__(
        self,
        method: ContinualMethod,
        curriculum: Curriculum,
        agent: MTSAC,
        num_tasks: int,
        steps_per_task: int,
    ) -> None:
        self.method, self.curriculum, self.agent = method, curriculum, agent
        self.num_tasks, self.steps_per_task = num_tasks, steps_per_task
        self.task_start = 0  # env step at which the current task began
        self.switches = 0  # tasks completed so far

    def explores(self, steps: int) -> bool:
        return steps - self.task_start < self.method.config.explore_steps

    def after_env_step(self, steps: int, buffer: TaskReplayBuffer) -> None:
        done_tasks = np.flatnonzero(self.curriculum.completed)
        if len(done_tasks) > self.switches:  # the current task's budget is spent
            for task in done_tasks[self.switches :]:
                self.method.end_task(int(task), buffer)
                if not self.method.config.keeps_buffer:
                    buffer.reset(np.array([task]))
            if self.method.config.reset_optimizer:
                self.agent.reset_optimizers()
            self.switches = len(done_tasks)
            self.task_start = steps
        if self.switches < self.num_tasks:  # tasks complete in sequence order
            in_task = steps - self.task_start
            self.method.progress(self.switches, in_task, self.steps_per_task, self.num_tasks)

    def checkpoint(self) -> dict[str, Any]:
        return {"method": self.method.state_dict(), "task_start": self.task_start}

    def restore(self, state: dict[str, Any]) -> None:
        self.method.load_state_dict(state["method"])
        self.task_start = int(state["task_start"])
        # the tasks completed when the checkpoint was written (the curriculum's entry:
        # restored by CurriculumProgress, in whichever order the components come)
        self.switches = int(np.sum(state["curriculum"]["completed"]))
