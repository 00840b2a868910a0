"""``kind = "continual"``: learn a task sequence one task at a time with MT-SAC.

A continual recipe is an MT-SAC recipe whose curriculum is the task sequence itself
(each task unlocks the next after ``steps_per_task`` env steps, only the newest task
runs) and whose update carries a continual-learning method. The defaults are
Continual World's (Wołczyk et al. 2021): CW10, 200-step episodes on Meta-World
(other families keep their own limit), one env, 1M steps
per task, actor and critic 4 x 256 with LayerNorm after the first layer and one output
head per task, batch 128, learning rate 1e-3, replay buffer and optimiser reset at
each task switch, 10k random-action steps at the start of each task, critic not
regularised, 10 evaluation episodes per task every 20k steps.

Forward transfer compares the area under a task's success curve while the sequence
trains it against the same task trained alone from scratch with the same settings:
:func:`reference_recipe` makes that single-task recipe (fine-tuning, the task alone);
:func:`reference_aucs` trains the missing ones into
``$MTRL_CACHE_DIR/references/<hash of the recipe>/`` and returns their AUCs, so every
run and comparison with the same settings shares them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mtrl.agents.sac import SACConfig
from mtrl.config import bounded, to_dict
from mtrl.curriculum.config import CurriculumConfig
from mtrl.curriculum.methods import ContinualConfig
from mtrl.curriculum.report import (
    continual_report,
    continual_results,
    plot_success_heatmap,
    success_matrix,
)
from mtrl.envs import get_family
from mtrl.envs.metaworld_suites import MetaWorldSuite, cache_root
from mtrl.envs.vector import MultiTaskEnvConfig, resolve_tasks
from mtrl.errors import ConfigError
from mtrl.kinds.mtsac import CURVES, EVALUATES, Plan, SACRun, load_policy, train_sac
from mtrl.nets import NetConfig
from mtrl.runs import RunDir


def cw_net() -> NetConfig:
    return NetConfig(
        arch="multihead",
        hidden=[256, 256, 256, 256],
        activation="leaky_relu",
        encoder="none",
        layer_norm=True,
    )


def cw_sac() -> SACConfig:
    return SACConfig(actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3, actor=cw_net(), critic=cw_net())


CW_EPISODE_STEPS = 200  # Continual World's episodes on Meta-World (its own limit: 500)


def cw_env() -> MultiTaskEnvConfig:
    return MultiTaskEnvConfig(name="CW10", num_envs=1)


@dataclass(frozen=True)
class ContinualRecipe(SACRun):
    """A task sequence learned in order (a :class:`SACRun` with Continual World's
    defaults); ``total_steps`` is ``steps_per_task`` x tasks."""

    kind: Literal["continual"] = "continual"
    env: MultiTaskEnvConfig = field(default_factory=cw_env)
    steps_per_task: int = bounded(1_000_000, ge=1)
    total_steps: int = bounded(0, ge=0)  # derived; leave at 0
    learning_starts: int = bounded(1_000, ge=0)
    batch_size: int = bounded(128, ge=1)
    buffer_capacity: int = bounded(1_000_000, ge=1)
    eval_every: int = bounded(20_000, ge=1)
    eval_episodes: int = bounded(10, ge=1)
    log_every: int = bounded(5_000, ge=1)
    checkpoint_every: int = bounded(100_000, ge=1)
    sac: SACConfig = field(default_factory=cw_sac)
    continual: ContinualConfig = field(default_factory=ContinualConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.total_steps:
            raise ConfigError(
                "a continual run lasts steps_per_task x tasks: set steps_per_task and "
                "leave total_steps out"
            )
        if self.continual.method == "packnet":
            for net in ("actor", "critic"):
                arch = getattr(self.sac, net).arch
                if arch not in ("shared", "multihead") and (
                    net == "actor" or self.continual.regularize_critic
                ):
                    raise ConfigError(
                        f"continual.method = 'packnet' prunes arch 'shared' or 'multihead' "
                        f"networks; sac.{net}.arch is {arch!r}"
                    )
        if self.sac.critics != 2:
            raise ConfigError(
                f"sac.critics = {self.sac.critics}: the continual methods regularise and "
                "prune SAC's twin critics; leave sac.critics = 2"
            )
        if self.resets is not None:
            raise ConfigError(
                "[resets]: the continual methods keep what earlier tasks taught the "
                "networks, which a reset would erase; remove the [resets] table"
            )
        if self.env.vectorization != "sync":
            raise ConfigError("continual runs re-bind sub-envs: use env.vectorization = 'sync'")
        if self.env.max_episode_steps is None and any(
            isinstance(get_family(m), MetaWorldSuite) for m in self.env.members
        ):  # resolved here, so config.toml records it
            env = dataclasses.replace(self.env, max_episode_steps=CW_EPISODE_STEPS)
            object.__setattr__(self, "env", env)

    def plan(self) -> Plan:
        """The SAC loop with the sequence as its curriculum (each task unlocks the next
        after ``steps_per_task`` env steps, only the newest runs), the recipe's method
        in the update, and Continual World's metrics in the summary (forward transfer
        where the reference runs are cached)."""
        sequence = CurriculumConfig(
            unlock="budget", budget=self.steps_per_task, sampler="sequential"
        )

        def metrics(run: RunDir) -> dict[str, Any]:
            refs = reference_aucs(self)
            return {"continual": continual_results(run, self.steps_per_task, refs)}

        return Plan(sequence, self.continual, self.steps_per_task, metrics)


__all__ = ["CURVES", "EVALUATES", "ContinualRecipe", "load_policy", "train_continual"]


def more_results(
    run: RunDir, recipe: ContinualRecipe, train: bool, log: Callable[[str], None]
) -> dict[str, Any]:
    """Continual World's metrics (`mtrl eval`, `mtrl compare`), forward transfer from the
    cached reference runs (``train``: the missing ones trained first)."""
    refs = reference_aucs(recipe, train=train, log=log)
    return {"continual": continual_results(run, recipe.steps_per_task, refs)}


def results_text(results: dict[str, Any], recipe: ContinualRecipe) -> str:
    """The metrics as `mtrl eval` prints them under the per-task table."""
    return continual_report(results["continual"], recipe.continual.method)


def plots(run: RunDir, recipe: ContinualRecipe, labels: dict[int, str]) -> list[Path]:
    """`mtrl plot`: the success matrix (task x env step) beside the curves."""
    steps, success = success_matrix(run, len(labels))
    if not len(steps):
        return []
    names = [labels[i] for i in range(len(labels))]
    path = run.plots / "success_matrix.png"
    return [plot_success_heatmap(steps, success, names, recipe.steps_per_task, path)]


def train_continual(
    recipe: ContinualRecipe,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = False,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """The SAC loop with the recipe's plan: the sequence and the method."""
    return train_sac(recipe, recipe.plan(), run_dir, resume, progress, init_from)


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
