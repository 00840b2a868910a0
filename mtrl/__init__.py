"""mtrl: multi-task RL, meta-learning and lifelong learning on gymnasium environments.

Importing :mod:`mtrl` has no side effects. Call :func:`mtrl.envs.register_envs` (or use
:func:`mtrl.envs.make`) to register the ``mtrl/...`` gymnasium ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mtrl.loading import TrainedRun

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(run_dir: str | Path) -> TrainedRun:
    """A trained run (any kind) from its newest checkpoint: ``.act(obs, task_id,
    deterministic=True)``, ``.recipe``, ``.env_config``, ``.make_env()``, ``.model``."""
    from mtrl.loading import load as _load

    return _load(run_dir)
