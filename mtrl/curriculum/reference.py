"""Reference single-task runs for forward transfer, produced and cached by mtrl.

Continual World's forward transfer compares the area under a task's success curve
while the sequence trains it against the same task trained alone from scratch with the
same settings. :func:`reference_recipe` makes that single-task recipe (fine-tuning,
the task alone); :func:`reference_aucs` trains the missing ones into
``$MTRL_CACHE_DIR/references/<hash of the recipe>/`` and returns their AUCs, so every
run and comparison with the same settings shares them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mtrl.config import to_dict
from mtrl.curriculum.continual import ContinualRecipe
from mtrl.curriculum.methods import ContinualConfig
from mtrl.curriculum.report import success_matrix
from mtrl.envs.metaworld_suites import cache_root
from mtrl.envs.vector import resolve_tasks
from mtrl.runs import RunDir


def reference_recipe(recipe: ContinualRecipe, task_index: int) -> ContinualRecipe:
    """Task ``task_index`` of the sequence alone, fine-tuned from scratch."""
    tasks = resolve_tasks(recipe.env)
    task = tasks[task_index]
    env = dataclasses.replace(recipe.env, num_tasks=None, order="given")
    if task.family == "metaworld":
        env = dataclasses.replace(env, tasks=[task.label], task_params=None)
    else:
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in task.params}
        env = dataclasses.replace(env, tasks=None, task_params=[params])  # type: ignore[list-item]
    cont = ContinualConfig(
        explore_steps=recipe.continual.explore_steps,
        reset_optimizer=recipe.continual.reset_optimizer,
    )
    return dataclasses.replace(recipe, env=env, continual=cont)


def reference_dir(recipe: ContinualRecipe) -> Path:
    """Where the reference run of a single-task recipe is cached."""
    doc = to_dict(recipe)
    for key in ("threads", "device", "log_every", "checkpoint_every", "checkpoint_buffer"):
        doc.pop(key, None)  # do not change the numbers
    digest = hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root() / "references" / digest


def reference_aucs(
    recipe: ContinualRecipe,
    *,
    train: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> list[float] | None:
    """Per task, the AUC of its cached reference run (training missing ones when
    ``train``; None if any is missing and ``train`` is false)."""
    from mtrl.curriculum.continual import train_continual

    aucs = []
    for i in range(len(resolve_tasks(recipe.env))):
        ref = reference_recipe(recipe, i)
        path = reference_dir(ref)
        if not (path / "summary.json").is_file():
            if not train:
                return None
            resume = any((path / "checkpoints").glob("step_*.pt"))
            log(f"reference run for task {i}: {'resuming' if resume else 'training'} in {path}")
            train_continual(ref, path, resume=resume)
        steps, success = success_matrix(RunDir.open(path), 1)
        inside = steps <= ref.steps_per_task
        aucs.append(float(np.mean(success[inside, 0])) if inside.any() else float("nan"))
    return aucs
