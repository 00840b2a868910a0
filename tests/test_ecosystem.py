"""mtrl's envs under the peers' own tools: gymnasium's checker and wrappers, SB3's VecEnv
wrappers and video recorder."""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from recipes import SB3, derived
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecFrameStack, VecVideoRecorder

from mtrl.agents.sb3 import SB3MultiTaskVecEnv, TaskConditionedPolicy, stack_frames
from mtrl.curriculum import CurriculumConfig
from mtrl.curriculum.baselines import build_curriculum
from mtrl.envs.vector import MultiTaskEnvConfig, make_multitask_env
from mtrl.envs.wrappers import TaskEpisodeStats, TaskIdentity
from mtrl.errors import ConfigError
from mtrl.recipes import parse_recipe


def _vec(**kw: object) -> gym.vector.VectorEnv:
    return make_multitask_env(MultiTaskEnvConfig(**kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "cfg",
    [
        {"name": "pendulum", "num_tasks": 2, "task_encoding": "index"},
        {"name": "navigation2d", "num_tasks": 2, "task_encoding": "onehot"},
        {"name": "halfcheetah-vel", "num_tasks": 2, "task_encoding": "concat"},
        {"name": "MT10", "num_tasks": 2},
    ],
    ids=lambda c: f"{c['name']}-{c.get('task_encoding', 'index')}",
)
def test_sub_envs_as_built_pass_gymnasiums_checker(cfg: dict[str, object]) -> None:
    vec = _vec(**cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # style warnings (infinite bounds) are not failures
        for sub in vec.unwrapped.envs:  # type: ignore[attr-defined]
            check_env(sub, skip_render_check=True)  # re-makes the sub-env from its spec
    vec.close()


def test_a_sub_env_re_made_from_its_spec_runs_the_same_task() -> None:
    vec = _vec(name="pendulum", num_tasks=3)
    sub = vec.unwrapped.envs[2]  # type: ignore[attr-defined]
    again = sub.spec.make()
    assert again.unwrapped.get_task() == sub.unwrapped.get_task()
    assert isinstance(again, TaskIdentity) and again.task_index == 2
    vec.close()


def test_curriculum_slot_sub_envs_pass_the_checker() -> None:
    env_cfg = MultiTaskEnvConfig(name="navigation2d", num_tasks=3, num_envs=2)
    curriculum = build_curriculum(CurriculumConfig(), env_cfg, 3, seed=0)
    vec = make_multitask_env(env_cfg, scheduler=curriculum)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(vec.unwrapped.envs[0], skip_render_check=True)  # type: ignore[attr-defined]
    vec.close()


def test_onehot_observations_are_fresh_arrays() -> None:
    env = TaskIdentity(gym.make("Pendulum-v1"), 1, 3, encoding="onehot")
    first, _ = env.reset(seed=0)
    first["task_onehot"][:] = 7  # a user writing into an observation
    env.action_space.seed(0)
    second, *_ = env.step(env.action_space.sample())
    np.testing.assert_array_equal(second["task_onehot"], [0, 1, 0])
    assert second["task_onehot"] is not first["task_onehot"]


def test_record_episode_statistics_works_on_sub_envs_and_the_vector_env() -> None:
    vec = _vec(name="navigation2d", num_tasks=2)
    single = gym.wrappers.RecordEpisodeStatistics(vec.unwrapped.envs[1])  # type: ignore[attr-defined]
    single.reset(seed=0)
    away = np.full(2, 0.1, dtype=np.float32)
    for _ in range(100):
        *_, truncated, info = single.step(away)
    assert truncated and info["episode"]["l"] == 100
    assert info["task_episode"]["l"] == 100 and info["task_episode"]["task_id"] == 1
    np.testing.assert_allclose(info["episode"]["r"], info["task_episode"]["r"], rtol=1e-5)
    vec.close()

    vec = gym.wrappers.vector.RecordEpisodeStatistics(_vec(name="navigation2d", num_tasks=2))
    vec.reset(seed=0)
    for _ in range(100):
        *_, info = vec.step(np.full((2, 2), 0.1, dtype=np.float32))
    assert info["_episode"].all() and (info["episode"]["l"] == 100).all()
    assert len(vec.return_queue) == 2
    assert [s["episodes"] for s in vec.env.episode_statistics()] == [1, 1]  # type: ignore[attr-defined]
    vec.close()


def test_vector_env_passes_call_get_attr_and_set_attr_through() -> None:
    vec = _vec(name="navigation2d", num_tasks=2, envs_per_task=2)
    assert vec.get_attr("task_index") == (0, 0, 1, 1)
    assert len(vec.call("get_task")) == 4
    vec.set_attr("task_index", [1, 1, 0, 0])
    assert vec.get_attr("task_index") == (1, 1, 0, 0)
    vec.close()


def test_sb3_adapter_attributes_and_wrappers_follow_sb3() -> None:
    env = SB3MultiTaskVecEnv(_vec(name="navigation2d", num_tasks=2, envs_per_task=2))
    setters = env.get_attr("set_task_index")
    assert all(callable(s) for s in setters)  # returned, not called
    env.set_attr("task_index", 1, indices=[0])
    assert env.get_attr("task_index") == [1, 0, 1, 1]
    assert env.get_attr("task_index", indices=[2, 3]) == [1, 1]
    assert env.env_is_wrapped(TaskEpisodeStats) == [True] * 4
    assert env.env_is_wrapped(gym.wrappers.RecordVideo, indices=[0]) == [False]
    with pytest.raises(ConfigError, match="rgb_array"):
        env.get_images()
    env.close()


def test_sb3_video_recorder_writes_a_video(tmp_path: Path) -> None:
    pytest.importorskip("moviepy")
    cfg = MultiTaskEnvConfig(name="navigation2d", num_tasks=2, render_mode="rgb_array")
    env = SB3MultiTaskVecEnv(make_multitask_env(cfg))
    assert env.render_mode == "rgb_array"
    env.reset()
    frames = env.get_images()
    assert len(frames) == 2 and frames[0] is not None and frames[0].shape[2] == 3
    rec = VecVideoRecorder(
        env, str(tmp_path), record_video_trigger=lambda step: step == 0, video_length=20
    )
    rec.reset()
    for _ in range(25):
        rec.step(np.zeros((2, 2), dtype=np.float32))
    rec.close()
    videos = list(tmp_path.glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000


def test_sb3_frame_stacking_with_onehot_task_encoding() -> None:
    """SB3's VecFrameStack fails deep inside SB3 on the default Discrete task id;
    stack_frames says which encodings work, and stacks them (a real SB3 VecFrameStack)."""
    index = MultiTaskEnvConfig(name="navigation2d", num_tasks=2)
    with pytest.raises(TypeError, match="only supports Box and Dict"):  # SB3's own words
        VecFrameStack(SB3MultiTaskVecEnv(make_multitask_env(index)), n_stack=3)
    with pytest.raises(ConfigError, match="task_encoding = 'onehot'"):
        stack_frames(SB3MultiTaskVecEnv(make_multitask_env(index)), 3)
    cfg = MultiTaskEnvConfig(name="navigation2d", num_tasks=2, task_encoding="onehot")
    env = stack_frames(SB3MultiTaskVecEnv(make_multitask_env(cfg)), 3)
    assert isinstance(env, VecFrameStack)
    obs = env.reset()
    assert obs["observation"].shape == (2, 6) and obs["task_onehot"].shape == (2, 6)
    model = PPO(
        TaskConditionedPolicy,
        env,
        n_steps=16,
        batch_size=16,
        policy_kwargs={"per_task_heads": True, "features_extractor_kwargs": {"num_tasks": 2}},
        seed=0,
    )
    model.learn(32)
    extractor = model.policy.features_extractor
    assert extractor.num_tasks == 2  # type: ignore[attr-defined]
    env.close()


def test_task_conditioned_policy_on_a_flat_env_names_the_fix() -> None:
    cfg = MultiTaskEnvConfig(name="navigation2d", num_tasks=2, task_encoding="concat")
    env = SB3MultiTaskVecEnv(make_multitask_env(cfg))
    with pytest.raises(ConfigError, match="task_encoding"):
        PPO(TaskConditionedPolicy, env, n_steps=16)
    env.close()


def test_sb3_recipe_with_sb3s_own_tensorboard_log(tmp_path: Path) -> None:
    text = derived(SB3, "total_steps=128", f'algo_kwargs.tensorboard_log="{tmp_path / "sb3_tb"}"')
    recipe = tomllib.loads(text)
    kind, cfg = parse_recipe(recipe, "sb3")
    kind.train(cfg, tmp_path / "run")
    assert list((tmp_path / "sb3_tb").rglob("events.out.tfevents.*"))  # SB3's own events
    assert list((tmp_path / "run").glob("events.out.tfevents.*"))  # and mtrl's
    assert (tmp_path / "run" / "model.zip").is_file()
