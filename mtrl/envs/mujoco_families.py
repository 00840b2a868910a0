"""MuJoCo task families on gymnasium's v5 models.

Reward definitions follow the MAML / PEARL setups: HalfCheetahVel rewards
``-|v_x - v_target|``, HalfCheetahDir ``direction · v_x``, AntDir the velocity along a
direction, AntGoal the negative L1 distance to a goal in a disk of radius 3, each with
the model's control cost (and contact/survive terms for Ant). Hopper and Walker2d
body-parameter families scale body masses, inertias, joint damping and geom friction
by ``base**u``, ``u ~ U[-3, 3]`` per element (the PEARL "rand-params" tasks).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.mujoco import mujoco_env
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv
from numpy.typing import NDArray

from mtrl.tasks import ChoiceSampler, ParametricFamily, ParamValue, Task, TaskEnvMixin, as_float

_CHEETAH_CTRL = 0.05  # 0.5 * 1e-1, as in the MAML HalfCheetah tasks


class _TaskRewardMixin(TaskEnvMixin):
    """Replaces the model's reward by the task reward computed from the step info."""

    def _task_reward(self, info: dict[str, Any]) -> float:
        raise NotImplementedError

    def step(
        self, action: NDArray[np.float32]
    ) -> tuple[NDArray[np.float64], np.float64, bool, bool, dict[str, np.float64]]:
        obs, _, terminated, truncated, info = super().step(action)  # type: ignore[misc]
        reward = np.float64(self._task_reward(info))
        info["reward_task"] = reward
        return obs, reward, terminated, truncated, info


class HalfCheetahVelEnv(_TaskRewardMixin, HalfCheetahEnv):
    family_name = "halfcheetah-vel"

    def __init__(self, task: Task | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("ctrl_cost_weight", _CHEETAH_CTRL)
        super().__init__(**kwargs)
        self.set_task(task or HALFCHEETAH_VEL.default_task())

    def _apply_task(self, params: dict[str, ParamValue]) -> None:
        self._target_velocity = as_float(params["velocity"])

    def _task_reward(self, info: dict[str, Any]) -> float:
        return -abs(float(info["x_velocity"]) - self._target_velocity) + float(info["reward_ctrl"])


class HalfCheetahDirEnv(_TaskRewardMixin, HalfCheetahEnv):
    family_name = "halfcheetah-dir"

    def __init__(self, task: Task | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("ctrl_cost_weight", _CHEETAH_CTRL)
        super().__init__(**kwargs)
        self.set_task(task or HALFCHEETAH_DIR.default_task())

    def _apply_task(self, params: dict[str, ParamValue]) -> None:
        self._direction = as_float(params["direction"])

    def _task_reward(self, info: dict[str, Any]) -> float:
        return self._direction * float(info["x_velocity"]) + float(info["reward_ctrl"])


def _ant_costs(info: dict[str, Any]) -> float:
    return (
        float(info["reward_ctrl"]) + float(info["reward_contact"]) + float(info["reward_survive"])
    )


class AntDirEnv(_TaskRewardMixin, AntEnv):
    family_name = "ant-dir"

    def __init__(self, task: Task | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.set_task(task or ANT_DIR.default_task())

    def _apply_task(self, params: dict[str, ParamValue]) -> None:
        angle = as_float(params["angle"])
        self._direction = np.array([math.cos(angle), math.sin(angle)])

    def _task_reward(self, info: dict[str, Any]) -> float:
        velocity = np.array([info["x_velocity"], info["y_velocity"]], dtype=np.float64)
        return float(self._direction @ velocity) + _ant_costs(info)


class AntGoalEnv(_TaskRewardMixin, AntEnv):
    family_name = "ant-goal"

    def __init__(self, task: Task | None = None, **kwargs: Any) -> None:
        # The policy must see where it is to reach a goal position.
        kwargs.setdefault("exclude_current_positions_from_observation", False)
        super().__init__(**kwargs)
        self.set_task(task or ANT_GOAL.default_task())

    def _apply_task(self, params: dict[str, ParamValue]) -> None:
        self._goal = np.asarray(params["goal"], dtype=np.float64)

    def _task_reward(self, info: dict[str, Any]) -> float:
        pos = np.array([info["x_position"], info["y_position"]], dtype=np.float64)
        return -float(np.abs(pos - self._goal).sum()) + _ant_costs(info)


# ---- body-parameter families -------------------------------------------------------

_BODY_PARAMS = {  # name -> log base of the multiplier (PEARL rand-params setup)
    "body_mass": 1.5,
    "body_inertia": 1.5,
    "dof_damping": 1.3,
    "geom_friction": 1.5,
}
_LOG_SCALE_LIMIT = 3.0


@functools.cache
def _param_sizes(xml_file: str) -> dict[str, int]:
    model = mujoco.MjModel.from_xml_path(xml_file)
    return {name: int(np.asarray(getattr(model, name)).size) for name in _BODY_PARAMS}


def _xml_path(env_cls: type) -> str:
    name = {HopperEnv: "hopper.xml", Walker2dEnv: "walker2d_v5.xml"}[env_cls]
    return os.path.join(os.path.dirname(mujoco_env.__file__), "assets", name)


def body_param_sampler(env_cls: type) -> Callable[[np.random.Generator], dict[str, Any]]:
    def sample(rng: np.random.Generator) -> dict[str, Any]:
        sizes = _param_sizes(_xml_path(env_cls))
        return {
            name: base ** rng.uniform(-_LOG_SCALE_LIMIT, _LOG_SCALE_LIMIT, size=sizes[name])
            for name, base in _BODY_PARAMS.items()
        }

    return sample


@functools.cache
def _default_masses(xml_file: str) -> np.ndarray:
    return np.array(mujoco.MjModel.from_xml_path(xml_file).body_mass, dtype=np.float64)


def body_difficulty(env_cls: type) -> Callable[[Mapping[str, Any]], float]:
    """Difficulty of a body-parameter task: the total mass over the mean sliding
    friction, both relative to the default body (= 1). The actuators' gear is fixed, so
    a heavier body accelerates less per unit of torque, and a slipperier floor gives
    less push; both make hopping or walking harder."""

    def measure(p: Mapping[str, Any]) -> float:
        masses = _default_masses(_xml_path(env_cls))
        mult = np.broadcast_to(
            np.asarray(p["body_mass"], dtype=np.float64).reshape(-1), masses.shape
        )
        mass_ratio = float((masses * mult).sum() / masses.sum())
        friction = np.asarray(p["geom_friction"], dtype=np.float64).reshape(-1)
        sliding = friction if friction.size == 1 else friction.reshape(-1, 3)[:, 0]
        return mass_ratio / float(sliding.mean())

    return measure


def _unit_params(env_cls: type) -> dict[str, Any]:
    sizes = _param_sizes(_xml_path(env_cls))
    return {name: np.ones(sizes[name]) for name in _BODY_PARAMS}


class _BodyParamsMixin(TaskEnvMixin):
    """Scales the model's body parameters by the task's per-element multipliers."""

    model: Any

    def _remember_defaults(self) -> None:
        self._defaults = {n: np.array(getattr(self.model, n)) for n in _BODY_PARAMS}

    def _apply_task(self, params: dict[str, ParamValue]) -> None:
        for name, base in self._defaults.items():
            mult = np.asarray(params[name], dtype=np.float64)
            if mult.size == 1:  # one multiplier for every element
                mult = np.full(base.size, float(mult.reshape(-1)[0]))
            if mult.size != base.size:
                raise ValueError(
                    f"{name} multipliers have {mult.size} entries, the model {base.size}"
                )
            getattr(self.model, name)[:] = base * mult.reshape(base.shape)


class HopperParamsEnv(_BodyParamsMixin, HopperEnv):
    family_name = "hopper-params"

    def __init__(self, task: Task | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._remember_defaults()
        self.set_task(task or HOPPER_PARAMS.default_task())


class Walker2dParamsEnv(_BodyParamsMixin, Walker2dEnv):
    family_name = "walker2d-params"

    def __init__(self, task: Task | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._remember_defaults()
        self.set_task(task or WALKER2D_PARAMS.default_task())


def _sample_velocity(rng: np.random.Generator) -> dict[str, Any]:
    return {"velocity": rng.uniform(0.0, 2.0)}


_DIRECTIONS = ChoiceSampler(({"direction": -1.0}, {"direction": 1.0}))
_ANT_ANGLES = ChoiceSampler(({"angle": 0.0}, {"angle": math.pi}))


def _sample_ant_goal(rng: np.random.Generator) -> dict[str, Any]:
    angle = rng.uniform(0.0, 2 * math.pi)
    radius = 3.0 * math.sqrt(rng.uniform())
    return {"goal": (radius * math.cos(angle), radius * math.sin(angle))}


HALFCHEETAH_VEL = ParametricFamily(
    name="halfcheetah-vel",
    env_id="mtrl/HalfCheetahVel-v0",
    description="HalfCheetah running at a target velocity in [0, 2]",
    sampler=_sample_velocity,
    default={"velocity": 1.0},
    difficulty=lambda p: float(p["velocity"]),
)
HALFCHEETAH_DIR = ParametricFamily(
    name="halfcheetah-dir",
    env_id="mtrl/HalfCheetahDir-v0",
    description="HalfCheetah running forward or backward",
    sampler=_DIRECTIONS,
    default={"direction": 1.0},
    num_train=2,
    num_test=2,
)
ANT_DIR = ParametricFamily(
    name="ant-dir",
    env_id="mtrl/AntDir-v0",
    description="Ant running forward or backward along x",
    sampler=_ANT_ANGLES,
    default={"angle": 0.0},
    num_train=2,
    num_test=2,
)
ANT_GOAL = ParametricFamily(
    name="ant-goal",
    env_id="mtrl/AntGoal-v0",
    description="Ant reaching a goal position in a disk of radius 3",
    sampler=_sample_ant_goal,
    default={"goal": (1.0, 1.0)},
)
HOPPER_PARAMS = ParametricFamily(
    name="hopper-params",
    env_id="mtrl/HopperParams-v0",
    description="Hopper with scaled body mass, inertia, damping and friction",
    sampler=body_param_sampler(HopperEnv),
    default=functools.partial(_unit_params, HopperEnv),
    difficulty=body_difficulty(HopperEnv),
)
WALKER2D_PARAMS = ParametricFamily(
    name="walker2d-params",
    env_id="mtrl/Walker2dParams-v0",
    description="Walker2d with scaled body mass, inertia, damping and friction",
    sampler=body_param_sampler(Walker2dEnv),
    default=functools.partial(_unit_params, Walker2dEnv),
    difficulty=body_difficulty(Walker2dEnv),
)
