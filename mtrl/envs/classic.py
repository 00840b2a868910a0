"""Classic-control families: CartPole and Pendulum with varied physics, and CartPole
with a hidden target cart position (the task identity matters: one task-blind policy
cannot serve targets on both sides)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.pendulum import PendulumEnv

from mtrl.tasks import ParametricFamily, ParamValue, Task, TaskEnvMixin, as_float

CARTPOLE_DEFAULT = {
    "length": 0.5,
    "masspole": 0.1,
    "masscart": 1.0,
    "gravity": 9.8,
    "force_mag": 10.0,
}
PENDULUM_DEFAULT = {"gravity": 10.0, "mass": 1.0, "length": 1.0}
CARTPOLE_GOAL_DEFAULT = {"target": 1.0}
X_LIMIT = 2.4  # gymnasium's CartPole terminates beyond this cart position


def headless_pygame(render_mode: str | None) -> None:
    """Frames without a display: pygame's dummy video driver for ``rgb_array`` when no
    display is set (else SDL prints an XDG_RUNTIME_DIR error on every render)."""
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if render_mode == "rgb_array" and not display:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def sample_cartpole(rng: np.random.Generator) -> dict[str, Any]:
    """Pole half-length, masses, gravity and push force, each log-uniform around the default."""
    return {
        "length": _log_uniform(rng, 0.25, 1.5),
        "masspole": _log_uniform(rng, 0.05, 0.5),
        "masscart": _log_uniform(rng, 0.5, 2.0),
        "gravity": rng.uniform(7.0, 13.0),
        "force_mag": _log_uniform(rng, 5.0, 20.0),
    }


def cartpole_difficulty(p: Mapping[str, Any]) -> float:
    """Fall rate sqrt(g/l) over control authority F/M, relative to the default task (=1)."""

    def raw(q: Mapping[str, Any]) -> float:
        total = q["masscart"] + q["masspole"]
        return math.sqrt(q["gravity"] / q["length"]) * total / q["force_mag"]

    return raw(p) / raw(CARTPOLE_DEFAULT)


def sample_pendulum(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "gravity": rng.uniform(5.0, 15.0),
        "mass": rng.uniform(0.5, 1.5),
        "length": rng.uniform(0.5, 1.5),
    }


def pendulum_difficulty(p: Mapping[str, Any]) -> float:
    """Gravity torque m·g·l against the fixed torque limit, relative to the default task."""
    return (p["mass"] * p["gravity"] * p["length"]) / 10.0


def sample_cartpole_goal(rng: np.random.Generator) -> dict[str, Any]:
    """A target cart position on either side of the centre, 0.5 to 1.5 away from it."""
    return {"target": float(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.5))}


def target_reward(x: float, target: float) -> float:
    """1 at the target, falling linearly to 0 at a track's length (2.4) away."""
    return max(0.0, 1.0 - abs(x - target) / X_LIMIT)


class CartPoleTaskEnv(TaskEnvMixin, CartPoleEnv):
    """Gymnasium's CartPole with settable pole length, masses, gravity and force."""

    family_name = "cartpole"

    def __init__(self, task: Task | None = None, render_mode: str | None = None) -> None:
        headless_pygame(render_mode)
        super().__init__(render_mode=render_mode)
        self.set_task(task or CARTPOLE.default_task())

    def _apply_task(self, params: dict[str, ParamValue]) -> None:
        self.length = as_float(params["length"])
        self.masspole = as_float(params["masspole"])
        self.masscart = as_float(params["masscart"])
        self.gravity = as_float(params["gravity"])
        self.force_mag = as_float(params["force_mag"])
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length


class CartPoleGoalTaskEnv(TaskEnvMixin, CartPoleEnv):
    """Gymnasium's CartPole where each step's reward is :func:`target_reward` of the cart
    position (instead of 1): balance the pole at a target the observation does not show."""

    family_name = "cartpole-goal"

    def __init__(self, task: Task | None = None, render_mode: str | None = None) -> None:
        headless_pygame(render_mode)
        super().__init__(render_mode=render_mode)
        self.target = 0.0
        self.set_task(task or CARTPOLE_GOAL.default_task())

    def _apply_task(self, params: dict[str, ParamValue]) -> None:
        self.target = as_float(params["target"])

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        if reward:  # gymnasium's CartPole: 1 while alive (and on the failing step), else 0
            reward = target_reward(float(obs[0]), self.target)
        return obs, float(reward), terminated, truncated, info


class PendulumTaskEnv(TaskEnvMixin, PendulumEnv):
    """Gymnasium's Pendulum with settable gravity, mass and length."""

    family_name = "pendulum"

    def __init__(self, task: Task | None = None, render_mode: str | None = None) -> None:
        headless_pygame(render_mode)
        super().__init__(render_mode=render_mode)
        self.set_task(task or PENDULUM.default_task())

    def _apply_task(self, params: dict[str, ParamValue]) -> None:
        self.g = as_float(params["gravity"])
        self.m = as_float(params["mass"])
        self.l = as_float(params["length"])


CARTPOLE = ParametricFamily(
    name="cartpole",
    env_id="mtrl/CartPole-v0",
    description="CartPole with varied pole length, masses, gravity and force",
    sampler=sample_cartpole,
    default=CARTPOLE_DEFAULT,
    difficulty=cartpole_difficulty,
)

PENDULUM = ParametricFamily(
    name="pendulum",
    env_id="mtrl/Pendulum-v0",
    description="Pendulum swing-up with varied gravity, mass and length",
    sampler=sample_pendulum,
    default=PENDULUM_DEFAULT,
    difficulty=pendulum_difficulty,
)

CARTPOLE_GOAL = ParametricFamily(
    name="cartpole-goal",
    env_id="mtrl/CartPoleGoal-v0",
    description="CartPole balanced at a hidden target cart position (left or right)",
    sampler=sample_cartpole_goal,
    default=CARTPOLE_GOAL_DEFAULT,
)
