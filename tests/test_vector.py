from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from mtrl.envs.classic import CARTPOLE
from mtrl.envs.navigation import NAVIGATION2D
from mtrl.envs.policies import random_policy
from mtrl.envs.rollout import rollout
from mtrl.envs.vector import MultiTaskEnvConfig, MultiTaskVecEnv, make_multitask_env
from mtrl.envs.wrappers import TaskEpisodeStats, TaskIdentity
from mtrl.errors import ConfigError


def test_task_ids_in_observations_and_infos_task_sorted() -> None:
    env = make_multitask_env(MultiTaskEnvConfig(name="navigation2d", num_tasks=3, envs_per_task=2))
    assert env.num_envs == 6 and env.num_tasks == 3
    assert env.task_ids.tolist() == [0, 0, 1, 1, 2, 2]
    obs, info = env.reset(seed=0)
    env.action_space.seed(0)
    assert obs["task_id"].tolist() == [0, 0, 1, 1, 2, 2]
    obs, _, _, _, info = env.step(env.action_space.sample())
    assert info["task_id"].tolist() == [0, 0, 1, 1, 2, 2]
    assert obs["observation"].shape == (6, 2)
    assert env.single_observation_space["task_id"] == spaces.Discrete(3)
    env.close()


@pytest.mark.parametrize("autoreset", ["same_step", "next_step"])
def test_episode_statistics_per_task_in_both_autoreset_modes(autoreset: str) -> None:
    cfg = MultiTaskEnvConfig(
        name="cartpole", num_tasks=3, envs_per_task=2, autoreset_mode=autoreset
    )  # type: ignore[arg-type]
    env = make_multitask_env(cfg)
    rows = rollout(env, random_policy(env.action_space, 0), episodes_per_task=4, seed=0)
    assert [r["task_id"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert r["episodes"] == 4
        assert r["return"] == r["length"]  # CartPole pays 1 per step
        assert np.isnan(r["success"])  # CartPole reports no success
    assert env.episode_counts() == [0, 0, 0]  # statistics were cleared
    env.close()


def test_same_seed_same_rollout_and_async_matches_sync() -> None:
    def returns(vectorization: str) -> list[float]:
        cfg = MultiTaskEnvConfig(name="pendulum", num_tasks=2, vectorization=vectorization)  # type: ignore[arg-type]
        env = make_multitask_env(cfg)
        rows = rollout(env, random_policy(env.action_space, 1), episodes_per_task=1, seed=1)
        env.close()
        return [r["return"] for r in rows]

    sync = returns("sync")
    assert sync == returns("sync")
    assert np.allclose(sync, returns("async"))


@pytest.mark.parametrize(("encoding", "shape"), [("onehot", None), ("concat", (7,))])
def test_task_encodings(encoding: str, shape: tuple[int, ...] | None) -> None:
    env = TaskIdentity(CARTPOLE.make_env(), task_index=2, num_tasks=3, encoding=encoding)  # type: ignore[arg-type]
    obs, info = env.reset(seed=0)
    assert info["task_id"] == 2
    assert obs in env.observation_space
    if encoding == "concat":
        assert obs.shape == shape and obs[-3:].tolist() == [0, 0, 1]
    else:
        assert obs["task_onehot"].tolist() == [0, 0, 1]


def test_episode_stats_wrapper_reports_return_length_and_success() -> None:
    env = TaskEpisodeStats(NAVIGATION2D.make_env(), task_index=5)
    env.reset(seed=0)
    total, info = 0.0, {}
    for _ in range(100):
        _, r, term, trunc, info = env.step(np.zeros(2, dtype=np.float32))
        total += float(r)
        if term or trunc:
            break
    assert info["task_episode"]["l"] == 100 and info["task_episode"]["task_id"] == 5
    assert np.isclose(info["task_episode"]["r"], total)


def test_bad_vector_env_input_is_clear() -> None:
    with pytest.raises(ValueError, match="at least one task"):
        MultiTaskVecEnv.from_tasks([])
    with pytest.raises(ConfigError, match="num_tasks = 50 but navigation2d has 40"):
        make_multitask_env(MultiTaskEnvConfig(name="navigation2d", num_tasks=50))
    disabled = make_multitask_env(
        MultiTaskEnvConfig(name="navigation2d", autoreset_mode="disabled")
    )
    with pytest.raises(ConfigError, match="use autoreset_mode 'same_step'"):
        rollout(disabled, random_policy(disabled.action_space, 0), episodes_per_task=1, seed=0)
    with pytest.raises(ValueError, match="autoreset_mode must be one of"):
        MultiTaskVecEnv.from_tasks(NAVIGATION2D.tasks()[:1], autoreset_mode="sometimes")  # type: ignore[arg-type]


def test_dict_observation_works_with_sb3_multi_input_policy() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    vec = make_vec_env(lambda: TaskIdentity(CARTPOLE.make_env(), 1, 4), n_envs=2, seed=0)
    model = PPO(
        "MultiInputPolicy", vec, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu"
    )
    model.learn(64)
    obs = vec.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (2,)


@pytest.mark.parametrize(
    "cfg",
    [
        MultiTaskEnvConfig(name="pendulum", num_tasks=2),
        MultiTaskEnvConfig(name="hopper-params", num_tasks=2),
        MultiTaskEnvConfig(name="MT1:pick-place-v3", max_episode_steps=200),
    ],
    ids=lambda c: c.name,
)
def test_env_snapshot_continues_exactly(cfg: MultiTaskEnvConfig) -> None:
    """A checkpoint's env state: a second env loaded from it steps exactly like the
    original through episode ends and resets (Meta-World's reward reads gripper-pad
    positions through views into the physics data; they stay views)."""
    a = make_multitask_env(cfg)
    a.reset(seed=0)
    a.action_space.seed(0)
    for _ in range(30):
        a.step(a.action_space.sample())
    blob = a.state()
    assert blob is not None
    b = make_multitask_env(cfg)
    b.reset(seed=99)
    b.load_state(blob)
    for _ in range(450):  # past at least two episode ends
        action = a.action_space.sample()
        oa, ra, ta, ua, _ = a.step(action)
        ob, rb, tb, ub, _ = b.step(action)
        assert np.array_equal(oa["observation"], ob["observation"])
        assert np.array_equal(ra, rb) and np.array_equal(ta, tb) and np.array_equal(ua, ub)
    assert str(a.episode_statistics()) == str(b.episode_statistics())
    a.close()
    b.close()
