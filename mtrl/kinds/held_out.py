"""What meta-RL runs report on held-out tasks: per-point curves for `mtrl adapt`, and
per-task rows after a set amount of adaptation for a run's summary and `mtrl compare`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from mtrl.config import bounded, check_fields
from mtrl.loops.iterations import eval_stream
from mtrl.meta.rl_sampler import held_out_tasks
from mtrl.stats import mean_ci95
from mtrl.tasks import ParametricFamily, Task, TaskFamily

Outcome = tuple[torch.Tensor, torch.Tensor | None]  # returns, successes: [points, tasks]


@dataclass(frozen=True)
class HeldOutConfig:
    """A finished run's report on ``tasks`` held-out tasks (0: none): each task's
    return and success after ``steps`` of adaptation (MAML: inner gradient steps;
    RL² and PEARL: episodes of experience). `mtrl compare` compares these."""

    tasks: int = bounded(0, ge=0)
    steps: int = bounded(1, ge=0)

    def __post_init__(self) -> None:
        check_fields(self)


def curve_rows(outcome: Outcome) -> list[dict[str, float]]:
    """Mean and 95% CI over tasks of the returns (and the success rates, where the env
    reports success) ``[points, tasks]``, one row a point."""
    returns, successes = outcome
    rows = []
    for step in range(returns.shape[0]):
        mean, ci = mean_ci95(returns[step].numpy())
        row = {"steps": step, "return": mean, "ci95": ci}
        if successes is not None:
            rate, rate_ci = mean_ci95(successes[step].numpy())
            row |= {"success": rate, "success_ci95": rate_ci}
        rows.append(row)
    return rows


def task_rows(outcome: Outcome, tasks: list[Task]) -> list[dict[str, Any]]:
    """Each task's return (and success) at the outcome's last point, as the per-task
    rows of a run's results."""
    returns, successes = outcome
    rows: list[dict[str, Any]] = []
    for i, task in enumerate(tasks):
        row: dict[str, Any] = {"task_id": i, "task": task.name, "return": float(returns[-1, i])}
        if successes is not None:
            row["success"] = float(successes[-1, i])
        rows.append(row)
    return rows


def held_out_summary(rows: list[dict[str, Any]], steps: int) -> dict[str, Any]:
    """The results entries of a held-out report: the rows and their means."""
    out: dict[str, Any] = {"held_out_steps": steps, "per_task": rows}
    for key in ("return", "success"):
        values = [r[key] for r in rows if key in r]
        if values:
            out[f"held_out_{key}"] = sum(values) / len(values)
    return out


def held_out_report(
    recipe: Any, family: TaskFamily, learner: Any, outcome: Callable[[list[Task]], Outcome]
) -> dict[str, Any]:
    """A trained ``learner``'s report (the learner closed after): ``outcome`` on the
    recipe's ``held_out.tasks`` held-out tasks, drawn from its evaluation stream, with
    torch seeded by ``eval_seed`` so the report is the same for the same weights."""
    try:
        tasks = held_out_tasks(family, recipe.held_out.tasks, eval_stream(recipe.eval_seed))
        torch.manual_seed(recipe.eval_seed)
        return held_out_summary(task_rows(outcome(tasks), tasks), recipe.held_out.steps)
    finally:
        learner.close()


def tasks_are_held_out(family: TaskFamily) -> bool:
    """Whether evaluation tasks differ from training ones: not for a family of a few
    tasks (the direction families), whose every task is trained on."""
    return not (isinstance(family, ParametricFamily) and family.distinct_tasks() is not None)


def primary_metric(env: str) -> str:
    """What a meta-RL adaptation table reports: success on Meta-World's ML benchmarks
    (their protocol), return on the parametric families."""
    return "success" if env.startswith("ML") else "return"
