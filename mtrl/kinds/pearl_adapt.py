"""`mtrl adapt` for PEARL runs: returns on held-out tasks episode by episode, ``z``
drawn from the posterior of everything seen on the task so far."""

from __future__ import annotations

from typing import Any

import torch

from mtrl.kinds.held_out import curve_rows, primary_metric, tasks_are_held_out
from mtrl.kinds.pearl import PEARLRecipe, build
from mtrl.loops.iterations import eval_stream
from mtrl.meta.rl_sampler import held_out_tasks
from mtrl.runs import RunDir
from mtrl.seeding import seed_everything


def adapt_pearl(
    run: RunDir,
    recipe: PEARLRecipe,
    max_steps: int,
    num_tasks: int,
    pretrain_iterations: int | None,
    seed: int,
) -> dict[str, Any]:
    """Return of episode ``k`` (k = 0..max_steps) on ``num_tasks`` held-out tasks:
    ``z`` from the posterior of the task's earlier episodes (PEARL's online
    adaptation; episode 0 draws from the prior), against ``z`` from the prior at every
    episode (the same networks, not adapting). ``pretrain_iterations`` is unused."""
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    seed_everything(seed)
    learner, family = build(recipe, slots=num_tasks)
    learner.nets.load_state_dict(run.load_checkpoint()["pearl"])
    tasks = held_out_tasks(family, num_tasks, eval_stream(recipe.eval_seed))
    episodes = max_steps + 1
    curves = {
        "PEARL (posterior of earlier episodes)": curve_rows(
            learner.online_outcome(tasks, episodes, True)
        ),
        "prior z (no adaptation)": curve_rows(learner.online_outcome(tasks, episodes, False)),
    }
    learner.close()
    return {
        "metric": primary_metric(recipe.env),
        "lower_is_better": False,
        "x": "episodes",
        "env": recipe.env,
        "held_out": tasks_are_held_out(family),
        "tasks": num_tasks,
        "curves": curves,
    }
