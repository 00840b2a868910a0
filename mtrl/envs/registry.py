"""Lookup of task families and suites by name, and the listing behind `mtrl envs list`."""

from __future__ import annotations

from typing import Any, Literal, cast

import gymnasium as gym

from mtrl.envs.classic import CARTPOLE, CARTPOLE_GOAL, PENDULUM
from mtrl.envs.metaworld_suites import FAMILY as METAWORLD_FAMILY
from mtrl.envs.metaworld_suites import (
    all_env_names,
    make_metaworld_env,
    metaworld_suites,
    single_env_suite,
)
from mtrl.envs.mujoco_families import (
    ANT_DIR,
    ANT_GOAL,
    HALFCHEETAH_DIR,
    HALFCHEETAH_VEL,
    HOPPER_PARAMS,
    WALKER2D_PARAMS,
)
from mtrl.envs.navigation import NAVIGATION2D
from mtrl.errors import UnknownNameError
from mtrl.tasks import ParametricFamily, Task, TaskFamily

_PARAMETRIC = (
    CARTPOLE,
    CARTPOLE_GOAL,
    PENDULUM,
    NAVIGATION2D,
    HALFCHEETAH_VEL,
    HALFCHEETAH_DIR,
    ANT_DIR,
    ANT_GOAL,
    HOPPER_PARAMS,
    WALKER2D_PARAMS,
)


def parametric_families() -> dict[str, ParametricFamily]:
    return {f.name: f for f in _PARAMETRIC}


def known_names() -> list[str]:
    """Every name `get_family` accepts (MT1/ML1 once per Meta-World environment)."""
    names = list(parametric_families()) + list(metaworld_suites())
    for env in all_env_names():
        names += [f"MT1:{env}", f"ML1:{env}"]
    return names


def get_family(name: str) -> TaskFamily:
    """The family or suite called ``name``; unknown names list the close matches."""
    fams = parametric_families()
    if name in fams:
        return fams[name]
    suites = metaworld_suites()
    if name in suites:
        return suites[name]
    kind, sep, env = name.partition(":")
    if sep and kind in ("MT1", "ML1") and env in all_env_names():
        return single_env_suite(cast(Literal["MT1", "ML1"], kind), env)
    listing = (
        f"Run `mtrl envs list` to see the {len(fams) + len(suites)} families and suites "
        f"(MT1:<env> and ML1:<env> take any of Meta-World's {len(all_env_names())} "
        "environments, e.g. MT1:push-v3)."
    )
    raise UnknownNameError("env family or suite", name, known_names(), listing=listing)


def list_entries() -> list[dict[str, Any]]:
    """One row per family/suite: name, kind, gymnasium id, train/test task counts."""
    rows: list[dict[str, Any]] = []
    for fam in parametric_families().values():
        rows.append(
            {
                "name": fam.name,
                "kind": "family",
                "gym_id": fam.env_id,
                "train_tasks": fam.num_train,
                "test_tasks": fam.num_test,
                "sampled": True,
                "description": fam.description,
            }
        )
    suites: list[TaskFamily] = list(metaworld_suites().values())
    suites += [single_env_suite("MT1", "reach-v3"), single_env_suite("ML1", "reach-v3")]
    for suite in suites:
        rows.append(
            {
                "name": suite.name,
                "kind": "suite",
                "gym_id": suite.env_id,
                "train_tasks": suite.num_train,
                "test_tasks": suite.num_test,
                "sampled": False,
                "description": suite.description,
            }
        )
    rows[-2]["name"] = "MT1:<env>"
    rows[-1]["name"] = "ML1:<env>"
    rows[-2]["description"] = f"MT1 for any of {len(all_env_names())} envs, e.g. MT1:reach-v3"
    rows[-1]["description"] = f"ML1 for any of {len(all_env_names())} envs, e.g. ML1:reach-v3"
    return rows


def make_task_env(task: Task, **kwargs: Any) -> gym.Env[Any, Any]:
    """A time-limited env of ``task``'s family, set to ``task``."""
    if task.family == METAWORLD_FAMILY:
        return make_metaworld_env(task, **kwargs)
    fams = parametric_families()
    if task.family not in fams:
        raise UnknownNameError("task family", task.family, fams)
    return fams[task.family].make_env(task, **kwargs)
