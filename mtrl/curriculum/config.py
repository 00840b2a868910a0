"""The ``[curriculum]`` table of a recipe: task order, unlock rule, sampler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mtrl.config import bounded, check_fields
from mtrl.curriculum.graph import topological_order
from mtrl.errors import ConfigError

UnlockRule = Literal["mastery", "budget", "either", "all"]
SamplerName = Literal["sequential", "uniform", "learning_progress", "targets"]
MasteryMetric = Literal["success", "return"]


@dataclass(frozen=True)
class CurriculumConfig:
    """Which tasks a run may train on, and when.

    The tasks are the env's (in the env's order). ``prerequisites[j]`` lists the tasks
    that must be completed before task ``j`` unlocks; absent means a chain (each task
    needs the one before it). A task is completed by ``unlock``: ``mastery`` (the mean
    score of its last ``mastery_window`` training episodes reaches
    ``mastery_threshold``), ``budget`` (``budget`` env steps spent on it), ``either``
    (whichever comes first); ``all`` unlocks every task from the start (the baseline
    without a curriculum). Locked tasks are never run.

    The score is the episode's success, or its return normalised between a random
    policy's (``random_return``, measured over ``random_episodes`` when absent) and
    ``target_return``. The sampler picks each finished sub-env's next task among the
    unlocked ones: ``sequential`` (the newest: unlocked, not completed), ``uniform``,
    ``learning_progress`` (|fast - slow| moving averages of the score with an
    ``lp_epsilon`` uniform floor), or ``targets`` (only the target tasks, those no
    other task needs: direct training, the baseline a curriculum is measured against,
    with ``unlock = "all"``); a ``rehearsal`` share of episodes goes to completed
    tasks.
    """

    unlock: UnlockRule = "either"
    prerequisites: list[list[int]] | None = None
    mastery_metric: MasteryMetric = "success"
    mastery_threshold: float = bounded(0.9, ge=0.0, le=1.0)
    mastery_window: int = bounded(20, ge=1)
    budget: int = bounded(100_000, ge=1)  # env steps per task ("budget"/"either")
    target_return: list[float] | None = None  # per task, or one value for all
    random_return: list[float] | None = None  # per task, or one for all; measured if absent
    random_episodes: int = bounded(10, ge=1)
    sampler: SamplerName = "sequential"
    lp_fast: float = bounded(0.1, gt=0.0, le=1.0)
    lp_slow: float = bounded(0.01, gt=0.0, le=1.0)
    lp_epsilon: float = bounded(0.1, ge=0.0, le=1.0)
    rehearsal: float = bounded(0.0, ge=0.0, lt=1.0)
    stop_on_mastery: bool = False  # end the run once every target task is mastered

    def __post_init__(self) -> None:
        check_fields(self, "curriculum")
        if self.prerequisites is not None:
            if not self.prerequisites:
                raise ConfigError("curriculum.prerequisites is empty; give one list per task")
            try:
                topological_order(self.prerequisites)
            except ValueError as exc:
                raise ConfigError(f"curriculum.prerequisites: {exc}") from exc
        if self.mastery_metric == "return" and not self.target_return:
            raise ConfigError(
                "curriculum.mastery_metric = 'return' needs curriculum.target_return "
                "(the return that counts as mastered, per task or one for all)"
            )
        if self.lp_fast <= self.lp_slow:
            raise ConfigError(
                f"curriculum.lp_fast = {self.lp_fast} must exceed lp_slow = {self.lp_slow} "
                "(learning progress compares a fast and a slow moving average)"
            )
        if self.sampler == "targets" and self.unlock != "all":
            raise ConfigError(
                "curriculum.sampler = 'targets' trains the target tasks directly: set "
                "curriculum.unlock = 'all'"
            )
        if self.unlock == "all" and self.sampler == "sequential":
            raise ConfigError(
                "curriculum.unlock = 'all' with sampler = 'sequential' would run only "
                "the first tasks; use sampler = 'uniform' or 'learning_progress'"
            )

    def graph(self, num_tasks: int) -> list[list[int]]:
        """The prerequisite lists for ``num_tasks`` tasks (a chain when absent)."""
        from mtrl.curriculum.graph import chain

        if self.prerequisites is None:
            return chain(num_tasks)
        if len(self.prerequisites) != num_tasks:
            raise ConfigError(
                f"curriculum.prerequisites has {len(self.prerequisites)} entries but the "
                f"env has {num_tasks} tasks; give one list per task"
            )
        return [list(p) for p in self.prerequisites]

    def per_task(self, values: list[float] | None, num_tasks: int, key: str) -> list[float]:
        """``values`` broadcast to one per task (one value serves all)."""
        if values is None:
            raise ConfigError(f"curriculum.{key} is not set")
        if len(values) == 1:
            return list(values) * num_tasks
        if len(values) != num_tasks:
            raise ConfigError(
                f"curriculum.{key} has {len(values)} values for {num_tasks} tasks; "
                "give one per task or a single value"
            )
        return list(values)
