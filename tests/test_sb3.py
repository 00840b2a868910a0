"""The SB3 adapter, task-conditioned SB3 policies and per-task logging, with real SB3."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import PPO, SAC

from mtrl.agents.sb3 import (
    PerTaskStatsCallback,
    SB3MultiTaskVecEnv,
    TaskConditionedPolicy,
    TaskConditionedSACPolicy,
)
from mtrl.envs.vector import MultiTaskEnvConfig, make_multitask_env
from mtrl.errors import ConfigError


def _env(num_tasks: int = 2, per_task: int = 2, **kw: object) -> SB3MultiTaskVecEnv:
    cfg = MultiTaskEnvConfig(name="navigation2d", num_tasks=num_tasks, envs_per_task=per_task, **kw)  # type: ignore[arg-type]
    return SB3MultiTaskVecEnv(make_multitask_env(cfg))


def test_adapter_follows_sb3_conventions_at_episode_end() -> None:
    env = _env()
    env.seed(0)
    obs = env.reset()
    assert obs["observation"].shape == (4, 2) and obs["task_id"].tolist() == [0, 0, 1, 1]
    away = np.full((4, 2), 0.1, dtype=np.float32)  # walk away from every goal: no early stop
    for _ in range(99):
        _, _, dones, _ = env.step(away)
        assert not dones.any()
    obs, _rewards, dones, infos = env.step(away)  # step 100: the time limit
    assert dones.all()
    for i, info in enumerate(infos):
        assert info["TimeLimit.truncated"] is True
        assert info["task_id"] == env.task_ids[i]
        np.testing.assert_allclose(
            info["terminal_observation"]["observation"], [10.0, 10.0], atol=1e-4
        )
        assert info["episode"]["l"] == 100 and info["episode"]["task_id"] == env.task_ids[i]
    np.testing.assert_allclose(obs["observation"], 0.0)  # already reset for the next episode
    env.close()


def test_adapter_refuses_next_step_autoreset() -> None:
    with pytest.raises(ConfigError, match="same_step"):
        _env(autoreset_mode="next_step")


def test_sb3_sac_runs_with_the_task_conditioned_policy() -> None:
    env = _env()
    model = SAC(
        TaskConditionedSACPolicy,
        env,
        learning_starts=50,
        batch_size=32,
        seed=0,
        policy_kwargs={
            "net_arch": [16, 16],
            "features_extractor_kwargs": {"encoding": "embedding"},
        },
    )
    model.learn(120)
    assert model.policy.actor.features_extractor.embedding is not None
    env.close()


@pytest.mark.slow
def test_sb3_ppo_with_task_conditioned_policy_learns_every_task() -> None:
    env = _env(num_tasks=4, per_task=4)
    callback = PerTaskStatsCallback()
    model = PPO(
        TaskConditionedPolicy,
        env,
        seed=0,
        n_steps=256,
        batch_size=256,
        learning_rate=1e-3,
        policy_kwargs={"net_arch": [64, 64], "log_std_init": -1.5},
        device="cpu",
    )
    model.learn(60_000, callback=callback)
    first, last = callback.history[0], callback.history[-1]
    for tid in range(4):
        assert last[f"return_{tid}"] > -25.0, last  # random-ish start is about -100
        assert last[f"return_{tid}"] > first[f"return_{tid}"] + 40.0
    env.close()
