"""`mtrl adapt` for RL² runs: returns on held-out tasks episode by episode of a trial."""

from __future__ import annotations

from typing import Any

import torch

from mtrl.kinds.held_out import curve_rows, primary_metric, tasks_are_held_out
from mtrl.kinds.rl2 import RL2Recipe, build
from mtrl.loops.iterations import eval_stream
from mtrl.meta.rl_sampler import held_out_tasks
from mtrl.runs import RunDir
from mtrl.seeding import seed_everything


def adapt_rl2(
    run: RunDir,
    recipe: RL2Recipe,
    max_steps: int,
    num_tasks: int,
    pretrain_iterations: int | None,
    seed: int,
) -> dict[str, Any]:
    """Return of episode ``k`` (after ``k`` episodes of experience, k = 0..max_steps) of
    trials on ``num_tasks`` held-out tasks, ``trials_per_task`` trials each: the trained
    policy with its memory kept across the trial's episodes (RL²), the same policy with
    its memory reset at every episode (what it does without adapting across episodes),
    and an untrained one. ``pretrain_iterations`` is MAML-RL's and unused here."""
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    seed_everything(seed)
    learner, family = build(recipe, num_tasks, recipe.trials_per_task)
    learner.policy.load_state_dict(run.load_checkpoint()["rl2_policy"])
    tasks = held_out_tasks(family, num_tasks, eval_stream(recipe.eval_seed))
    episodes = max_steps + 1
    curves = {
        "RL² (memory across episodes)": curve_rows(learner.outcome(tasks, episodes)),
        "memory reset each episode": curve_rows(learner.outcome(tasks, episodes, False)),
    }
    torch.manual_seed(seed)
    fresh, _ = build(recipe, num_tasks, recipe.trials_per_task)
    curves["random init"] = curve_rows(fresh.outcome(tasks, episodes))
    fresh.close()
    learner.close()
    return {
        "metric": primary_metric(recipe.env),
        "lower_is_better": False,
        "x": "episodes",
        "env": recipe.env,
        "held_out": tasks_are_held_out(family),
        "tasks": num_tasks,
        "trials_per_task": recipe.trials_per_task,
        "env_steps": {"random init": 0.0},  # the others are the run's (its summary)
        "curves": curves,
    }
