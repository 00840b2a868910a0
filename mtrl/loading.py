"""``mtrl.load(run_dir)``: a trained run as a policy to act with, for every recipe kind.

The policy comes from the run's newest intact checkpoint (the one ``mtrl eval`` uses),
with the recipe and env config it was trained with, so a script can step its own env::

    trained = mtrl.load("runs/nav")
    env = trained.make_env()
    obs, _ = env.reset(seed=0)
    action = trained.act(obs["observation"], obs["task_id"])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtrl.errors import MtrlError

ActFn = Callable[[dict[str, np.ndarray], bool], np.ndarray]


@dataclass
class TrainedRun:
    """A run loaded for use: ``act`` maps observations and task ids to env actions."""

    kind: str
    recipe: Any  # the recipe's config dataclass (e.g. MTSACRecipe)
    run_dir: Path
    checkpoint: Path
    model: Any  # the trained network or SB3 algorithm, for further use
    _act: ActFn | None = field(default=None, repr=False)

    @property
    def env_config(self) -> Any:
        """The run's ``[env]`` config (a MultiTaskEnvConfig), or None for sine runs."""
        return getattr(self.recipe, "env", None)

    def make_env(self) -> Any:
        """The run's multi-task env as its evaluation builds it (no curriculum)."""
        from mtrl.envs.vector import MultiTaskEnvConfig, eval_env_config, make_multitask_env

        if not isinstance(self.env_config, MultiTaskEnvConfig):
            raise MtrlError(f"a {self.kind!r} run has no multi-task env; use .model")
        return make_multitask_env(eval_env_config(self.env_config))

    def act(self, obs: Any, task_id: Any = 0, deterministic: bool = True) -> np.ndarray:
        """Actions for one observation (``[obs_dim]``, task id an int) or a batch
        (``[n, obs_dim]``, task ids ``[n]``), in the env's action space."""
        if self._act is None:
            raise MtrlError(
                f"a {self.kind!r} run is a meta-learned regressor, not a policy: use "
                f".model (adapt it with `mtrl adapt {self.run_dir}`)"
            )
        o = np.asarray(obs, dtype=np.float32)
        single = o.ndim == 1
        batch = o[None] if single else o
        tid = np.broadcast_to(np.asarray(task_id, dtype=np.int64), (batch.shape[0],))
        tasks = getattr(self.env_config, "num_tasks", None)
        known = getattr(self.model, "num_tasks", tasks)
        if known is not None and ((tid < 0).any() or (tid >= known).any()):
            raise MtrlError(f"task_id {tid.tolist()} out of range: this run has {known} tasks")
        actions = self._act({"observation": batch, "task_id": tid.copy()}, deterministic)
        return actions[0] if single else actions


def load(run_dir: str | Path) -> TrainedRun:
    """Load a finished or interrupted run (any kind) from its newest checkpoint."""
    from mtrl.recipes import load_run

    run, kind, cfg = load_run(run_dir)
    state = run.load_checkpoint()  # the newest intact one
    assert run.loaded_checkpoint is not None
    model, act = load_as(kind, cfg, state, run.loaded_checkpoint)
    return TrainedRun(kind.name, cfg, run.path, run.loaded_checkpoint, model, act)


def load_as(kind: Any, cfg: Any, state: dict[str, Any], path: Path) -> tuple[Any, ActFn]:
    """``kind.load(cfg, state)``, where a checkpoint written by another kind (a
    config.toml edited or copied over) is an error naming what it holds."""
    try:
        return kind.load(cfg, state)
    except KeyError as err:
        wrote = f" (it was written by kind {state['kind']!r})" if "kind" in state else ""
        raise MtrlError(
            f"{path} does not fit kind {kind.name!r}, which its run's config.toml names"
            f"{wrote}: the checkpoint has no {err} entry (it holds "
            f"{', '.join(sorted(state))}); was config.toml edited or copied from another run?"
        ) from None
