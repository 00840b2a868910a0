"""`mtrl adapt` for MAML-RL runs: returns on held-out tasks before and after VPG steps."""

from __future__ import annotations

from typing import Any

import torch

from mtrl.kinds.held_out import curve_rows, primary_metric, tasks_are_held_out
from mtrl.kinds.maml_rl import MetaRLRecipe, build
from mtrl.loops.iterations import eval_stream
from mtrl.meta.rl_sampler import held_out_tasks
from mtrl.runs import RunDir
from mtrl.seeding import seed_everything


def adapt_meta_rl(
    run: RunDir,
    recipe: MetaRLRecipe,
    max_steps: int,
    num_tasks: int,
    pretrain_iterations: int | None,
    seed: int,
    task_batch: int | None = None,
) -> dict[str, Any]:
    """Average return on ``num_tasks`` held-out tasks after 0..max_steps inner steps.

    Every learner adapts the same way (one VPG step of the recipe's inner learning rate
    on ``episodes_per_task`` fresh episodes per step): the meta-learned policy, a randomly
    initialised one, and one pretrained on pooled training tasks without adaptation for
    ``pretrain_iterations`` (default: the run's own iteration budget; 0 leaves it out).
    ``env_steps`` holds what the two baselines trained on (the run's own is in its
    summary): the pooled one samples once an iteration, MAML twice.
    The tasks adapt ``task_batch`` at a time (default: all together): each holds
    ``episodes_per_task`` environments, which is what bounds the memory (a Meta-World
    environment takes ~20 MB, so ML1's 50 tasks x 10 episodes at once take ~11 GB).
    """
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    seed_everything(seed)
    batch = min(task_batch or num_tasks, num_tasks)
    meta, family = build(recipe, batch, recipe.episodes_per_task)
    meta.mp.load_state_dict(run.load_checkpoint()["meta_policy"])
    tasks = held_out_tasks(family, num_tasks, eval_stream(recipe.eval_seed))
    name = f"{recipe.meta.algorithm} (meta-learned)"
    curves = {name: curve_rows(meta.adaptation_returns(tasks, max_steps))}
    budget = recipe.iterations if pretrain_iterations is None else pretrain_iterations
    trained = {"random init": 0.0}  # env steps of the learners the run did not train
    if budget > 0:
        torch.manual_seed(seed)
        pre, _ = build(recipe, recipe.meta_batch, recipe.episodes_per_task)
        rng = eval_stream(seed + 7)  # pooled training tasks, not the held-out ones
        trained["pretrained on pooled tasks"] = sum(
            pre.pretrain_step(family.sample_tasks(recipe.meta_batch, rng))["env_steps"]
            for _ in range(budget)
        )
        pre.sampler.close()
        meta.mp.load_state_dict(pre.mp.state_dict())
        curves["pretrained on pooled tasks"] = curve_rows(meta.adaptation_returns(tasks, max_steps))
    meta.sampler.close()  # before the next sampler's environments exist
    torch.manual_seed(seed)
    fresh, _ = build(recipe, batch, recipe.episodes_per_task)
    curves["random init"] = curve_rows(fresh.adaptation_returns(tasks, max_steps))
    fresh.sampler.close()
    return {
        "metric": primary_metric(recipe.env),
        "lower_is_better": False,
        "env": recipe.env,
        "held_out": tasks_are_held_out(family),
        "tasks": num_tasks,
        "task_batch": batch,
        "episodes_per_task": recipe.episodes_per_task,
        "pretrain_iterations": budget,
        "env_steps": trained,
        "curves": curves,
    }
