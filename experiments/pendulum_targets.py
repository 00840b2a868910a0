"""Target returns for the Pendulum mastery curriculum: a scripted swing-up controller
(energy pumping, then a linear balance law near the top) on each task of
``experiments/curriculum_pendulum.toml``, averaged over seeded episodes.

    python experiments/pendulum_targets.py [--episodes 10]

The controller knows the physics (gravity, mass, length); "mastered" in the
curriculum means 90% of the way from a random policy's return to this one.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from mtrl.envs import get_family
from mtrl.recipes import load_recipe
from mtrl.tasks import Task

MAX_TORQUE = 2.0  # gymnasium's Pendulum


def swing_up_action(obs: np.ndarray, gravity: float, mass: float, length: float) -> float:
    """Gymnasium's pendulum: theta'' = a sin(theta) + b u with a = 3g/(2l), b = 3/(m l^2)
    (theta = 0 upright). Pump energy E = w^2/2 + a (cos theta - 1) towards 0 with full
    torque along the motion; near the top, a PD law placing both poles at -2."""
    cos, sin, w = (float(v) for v in obs)
    theta = math.atan2(sin, cos)
    a, b = 3 * gravity / (2 * length), 3 / (mass * length**2)
    if cos > 0.85 and abs(w) < 4.0:
        return float(np.clip(-((a + 4.0) * theta + 4.0 * w) / b, -MAX_TORQUE, MAX_TORQUE))
    energy = 0.5 * w * w + a * (math.cos(theta) - 1.0)
    if energy < 0:
        return MAX_TORQUE if w >= 0 else -MAX_TORQUE
    return float(np.clip(-0.5 * w, -MAX_TORQUE, MAX_TORQUE))


def controller_return(params: dict[str, float], episodes: int) -> float:
    family = get_family("pendulum")
    total = 0.0
    for seed in range(episodes):
        env = family.make_env(Task.make("pendulum", params))
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            u = swing_up_action(obs, params["gravity"], params["mass"], params["length"])
            obs, reward, term, trunc, _ = env.step(np.array([u], dtype=np.float32))
            total += float(reward)
            done = term or trunc
        env.close()
    return total / episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()
    _, recipe = load_recipe("experiments/curriculum_pendulum.toml")
    default = {"gravity": 10.0, "mass": 1.0, "length": 1.0}
    targets = [
        round(controller_return({**default, **p}, args.episodes), 1)
        for p in recipe.env.task_params or []
    ]
    print("target_return =", targets)


if __name__ == "__main__":
    main()
