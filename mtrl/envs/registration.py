"""Gymnasium registration of the ``mtrl/...`` ids (explicit and idempotent)."""

from __future__ import annotations

import gymnasium as gym

# id -> (entry point, max episode steps)
GYM_IDS: dict[str, tuple[str, int]] = {
    "mtrl/CartPole-v0": ("mtrl.envs.classic:CartPoleTaskEnv", 500),
    "mtrl/CartPoleGoal-v0": ("mtrl.envs.classic:CartPoleGoalTaskEnv", 500),
    "mtrl/Pendulum-v0": ("mtrl.envs.classic:PendulumTaskEnv", 200),
    "mtrl/Navigation2D-v0": ("mtrl.envs.navigation:Navigation2DEnv", 100),
    "mtrl/HalfCheetahVel-v0": ("mtrl.envs.mujoco_families:HalfCheetahVelEnv", 200),
    "mtrl/HalfCheetahDir-v0": ("mtrl.envs.mujoco_families:HalfCheetahDirEnv", 200),
    "mtrl/AntDir-v0": ("mtrl.envs.mujoco_families:AntDirEnv", 200),
    "mtrl/AntGoal-v0": ("mtrl.envs.mujoco_families:AntGoalEnv", 200),
    "mtrl/HopperParams-v0": ("mtrl.envs.mujoco_families:HopperParamsEnv", 200),
    "mtrl/Walker2dParams-v0": ("mtrl.envs.mujoco_families:Walker2dParamsEnv", 200),
    "mtrl/MetaWorld-v0": ("mtrl.envs.metaworld_suites:MetaWorldTaskEnv", 500),
}


def register_envs() -> None:
    """Register every ``mtrl/...`` id with gymnasium; calling it again does nothing."""
    for env_id, (entry_point, steps) in GYM_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=steps)
