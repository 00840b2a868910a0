"""A rollout run: a policy through a multi-task suite, written to a run directory."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mtrl.config import bounded, check_fields
from mtrl.envs.policies import metaworld_expert_policy, random_policy
from mtrl.envs.rollout import rollout
from mtrl.envs.vector import MultiTaskEnvConfig, make_multitask_env
from mtrl.errors import ConfigError
from mtrl.runs import RunDir
from mtrl.seeding import seed_everything


@dataclass(frozen=True)
class RolloutConfig:
    """The recipe of `mtrl envs rollout`."""

    seed: int = bounded(0, ge=0)
    policy: Literal["random", "expert"] = "random"
    episodes_per_task: int = bounded(2, ge=1, le=10_000)
    env: MultiTaskEnvConfig = field(default_factory=MultiTaskEnvConfig)

    def __post_init__(self) -> None:
        check_fields(self)


def run_rollout(
    cfg: RolloutConfig, run_dir: Path | None = None, progress: bool = False
) -> list[dict[str, Any]]:
    """Roll the policy, return per-task rows; with ``run_dir``, record the run there."""
    seed_everything(cfg.seed)
    env = make_multitask_env(cfg.env)  # a bad env config fails before the run dir exists
    try:
        if cfg.policy == "expert":
            if env.tasks[0].family != "metaworld":
                raise ConfigError(
                    "policy = 'expert' needs a Meta-World suite (e.g. MT10); use 'random'"
                )
            policy = metaworld_expert_policy(env.tasks, env.task_ids)
        else:
            policy = random_policy(env.action_space, cfg.seed)
        run = RunDir.create(run_dir, cfg) if run_dir is not None else None
        rows = rollout(env, policy, cfg.episodes_per_task, seed=cfg.seed, progress=progress)
    finally:
        env.close()
    if run is not None:
        for row in rows:
            run.log_metrics(row)
        succ = [r["success"] for r in rows if not math.isnan(r["success"])]
        run.write_summary(
            seed=cfg.seed,
            results={
                "per_task": rows,
                "mean_return": float(np.mean([r["return"] for r in rows])),
                "mean_success": float(np.mean(succ)) if succ else None,
            },
            env=cfg.env.label,
            metaworld_reward_version=cfg.env.reward_version,
        )
    return rows
