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
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mtrl.agents.mtsac_train import MTSACRecipe, train_mtsac
from mtrl.agents.sac import SACConfig
from mtrl.config import bounded
from mtrl.curriculum.config import CurriculumConfig
from mtrl.curriculum.methods import ContinualConfig
from mtrl.envs import get_family
from mtrl.envs.metaworld_suites import MetaWorldSuite
from mtrl.envs.vector import MultiTaskEnvConfig
from mtrl.errors import ConfigError
from mtrl.nets import NetConfig


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
class ContinualRecipe(MTSACRecipe):
    """A task sequence learned in order; ``total_steps`` is ``steps_per_task`` x tasks."""

    kind: Literal["continual"] = "continual"  # type: ignore[assignment]
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
        if self.curriculum is not None:
            raise ConfigError(
                "a continual recipe's curriculum is its task sequence (env.name / env.tasks "
                "with steps_per_task); leave [curriculum] out or use kind = 'mtsac'"
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
        if self.env.vectorization != "sync":
            raise ConfigError("continual runs re-bind sub-envs: use env.vectorization = 'sync'")
        if self.env.max_episode_steps is None and any(
            isinstance(get_family(m), MetaWorldSuite) for m in self.env.members
        ):  # resolved here, so config.toml records it
            env = dataclasses.replace(self.env, max_episode_steps=CW_EPISODE_STEPS)
            object.__setattr__(self, "env", env)

    def curriculum_config(self) -> CurriculumConfig:
        return CurriculumConfig(unlock="budget", budget=self.steps_per_task, sampler="sequential")

    def continual_config(self) -> ContinualConfig:
        return self.continual

    def budget(self, num_tasks: int) -> int:
        return self.steps_per_task * num_tasks


def train_continual(
    recipe: ContinualRecipe,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = False,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """MT-SAC's loop with the sequence as its curriculum and the recipe's method."""
    return train_mtsac(recipe, run_dir, resume=resume, progress=progress, init_from=init_from)
