"""Curricula and continual learning: which tasks a run trains on, when, and what it
keeps of earlier tasks.

* :class:`~mtrl.curriculum.config.CurriculumConfig` / :class:`~mtrl.curriculum.schedule.Curriculum`:
  task orders (chains, prerequisite DAGs), unlock rules and samplers, consulted by the
  multi-task vector env's sub-envs at episode boundaries;
* :mod:`mtrl.kinds.continual`: ``kind = "continual"`` recipes (task sequences such
  as Continual World's CW10/CW20) on MT-SAC, with the methods of
  :mod:`mtrl.curriculum.methods` and the metrics of :mod:`mtrl.curriculum.metrics`.
"""

from mtrl.curriculum.config import CurriculumConfig
from mtrl.curriculum.schedule import Curriculum

__all__ = ["Curriculum", "CurriculumConfig"]
