"""Multi-task envs over several families: padding, slicing, ids, checker, agents."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from stable_baselines3 import PPO

from mtrl.agents.sb3 import SB3MultiTaskVecEnv
from mtrl.curriculum import CurriculumConfig
from mtrl.curriculum.baselines import build_curriculum
from mtrl.envs import get_family
from mtrl.envs.mixture import FamilyPadding, MixtureLayout, pad_observation, unpad_action
from mtrl.envs.vector import MultiTaskEnvConfig, make_multitask_env, resolve_mixture
from mtrl.errors import ConfigError
from mtrl.kinds.mtsac import train_mtsac
from mtrl.recipes import parse_recipe

MIX = MultiTaskEnvConfig(name=["pendulum", "navigation2d", "halfcheetah-vel"], num_tasks=[2, 2, 1])


def test_pad_observation_and_unpad_action_by_hand() -> None:
    layout = MixtureLayout(("a", "b"), obs_dim=4, act_dim=3, num_actions=None, dtype="float32")
    out = pad_observation(np.array([1.0, 2.0]), layout, family=1)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [1, 2, 0, 0, 0, 1])
    low, high = np.array([-2.0, 0.0]), np.array([2.0, 10.0])
    # leading slice, rescaled from [-1, 1]; the padding dimension is ignored; clipped
    np.testing.assert_allclose(unpad_action(np.array([0.5, -1.0, 0.7]), low, high), [1.0, 0.0])
    np.testing.assert_allclose(unpad_action(np.array([3.0, 0.0, 0.0]), low, high), [2.0, 5.0])


def test_mixture_spaces_ids_and_families() -> None:
    tasks, fams = resolve_mixture(MIX)
    assert [t.family for t in tasks] == ["pendulum"] * 2 + ["navigation2d"] * 2 + [
        "halfcheetah-vel"
    ]
    assert fams == [0, 0, 1, 1, 2]
    # global ids: each member's tasks are the ones it has alone
    assert tasks[2:4] == get_family("navigation2d").tasks("train", seed=0)[:2]
    vec = make_multitask_env(MIX)
    obs_dim = 17 + 3  # HalfCheetah's 17, then the family one-hot
    assert vec.single_observation_space["observation"].shape == (obs_dim,)  # type: ignore[index]
    assert vec.single_action_space == spaces.Box(-1, 1, (6,), np.float32)
    assert vec.families == ["pendulum", "navigation2d", "halfcheetah-vel"]
    np.testing.assert_array_equal(vec.task_family, fams)
    obs, info = vec.reset(seed=0)
    np.testing.assert_array_equal(obs["task_id"], range(5))
    np.testing.assert_array_equal(info["family_id"], fams)
    onehots = obs["observation"][:, 17:]
    np.testing.assert_array_equal(onehots, np.eye(3)[fams])
    assert not obs["observation"][:2, 3:17].any()  # Pendulum's 3 numbers, then zeros
    assert not obs["observation"][2:4, 2:17].any()  # Navigation2D's 2
    vec.close()


def test_a_member_sees_its_own_observations_and_action_slice() -> None:
    task = get_family("pendulum").tasks("train", seed=0)[0]
    layout = MixtureLayout(("pendulum", "halfcheetah-vel"), 17, 6, None, "float64")
    padded = FamilyPadding(get_family("pendulum").make_env(task), layout, family=0)
    plain = get_family("pendulum").make_env(task)
    a, _ = padded.reset(seed=3)
    b, _ = plain.reset(seed=3)
    np.testing.assert_array_equal(a[:3], b)
    rng = np.random.default_rng(0)
    for _ in range(20):
        act = rng.uniform(-1, 1, 6).astype(np.float32)
        a, ra, *_ = padded.step(act)
        # Pendulum's torque bounds are [-2, 2]: the first dimension, scaled
        b, rb, *_ = plain.step(np.array([2.0 * act[0]], dtype=np.float32))
        np.testing.assert_allclose(a[:3], b, rtol=1e-6)
        assert ra == pytest.approx(rb)


def test_mixture_sub_envs_pass_gymnasiums_checker() -> None:
    vec = make_multitask_env(MIX)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # style warnings (infinite bounds) are not failures
        for sub in vec.unwrapped.envs:  # type: ignore[attr-defined]
            check_env(sub, skip_render_check=True)  # re-made from its spec, padding included
    vec.close()


def _trace(cfg: MultiTaskEnvConfig, seed: int) -> list[np.ndarray]:
    vec = make_multitask_env(cfg)
    vec.action_space.seed(seed)
    obs, _ = vec.reset(seed=seed)
    out = [obs["observation"].copy()]
    for _ in range(50):
        obs, reward, *_ = vec.step(vec.action_space.sample())
        out += [obs["observation"].copy(), np.asarray(reward).copy()]
    vec.close()
    return out


def test_same_seed_same_trajectories() -> None:
    a, b, c = _trace(MIX, 1), _trace(MIX, 1), _trace(MIX, 2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_discrete_and_continuous_families_do_not_mix() -> None:
    with pytest.raises(ConfigError, match=r"discrete-action families \(cartpole\).*\(pendulum\)"):
        make_multitask_env(MultiTaskEnvConfig(name="cartpole+pendulum", num_tasks=1))
    vec = make_multitask_env(MultiTaskEnvConfig(name="cartpole+cartpole-goal", num_tasks=1))
    assert vec.single_action_space == spaces.Discrete(2)
    vec.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ["pendulum", "pendulum"]}, "lists a family twice"),
        ({"name": "pendulum+navigation2d", "num_tasks": [1]}, "one count per member"),
        (
            {"name": "pendulum+navigation2d", "task_params": [{"mass": 2.0}]},
            "a mixture picks tasks",
        ),
        ({"name": "pendulum+navigation2d", "order": "difficulty"}, "single family"),
    ],
)
def test_bad_mixtures_are_refused_in_the_config(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_recipe({"kind": "mtsac", "env": kwargs}, "test")
    with pytest.raises((ConfigError, ValueError), match=message):
        MultiTaskEnvConfig(**kwargs)  # type: ignore[arg-type]


def test_string_and_list_names_are_the_same_mixture() -> None:
    a = MultiTaskEnvConfig(name="pendulum+navigation2d", num_tasks=2)
    b = MultiTaskEnvConfig(name=["pendulum", "navigation2d"], num_tasks=[2, 2])
    assert resolve_mixture(a) == resolve_mixture(b)
    assert a.label == b.label == "pendulum+navigation2d"


def test_tasks_by_label_across_members() -> None:
    nav = get_family("navigation2d").tasks("train", seed=0)[1].label
    pend = get_family("pendulum").tasks("train", seed=0)[0].label
    tasks, fams = resolve_mixture(
        MultiTaskEnvConfig(name="pendulum+navigation2d", tasks=[nav, pend])
    )
    assert [t.label for t in tasks] == [nav, pend] and fams == [1, 0]


def test_a_curriculum_climbs_across_families() -> None:
    env_cfg = MultiTaskEnvConfig(name="navigation2d+pendulum", num_tasks=1, num_envs=1)
    config = CurriculumConfig(unlock="budget", budget=150, sampler="sequential")
    curriculum = build_curriculum(config, env_cfg, 2, seed=0)
    vec = make_multitask_env(env_cfg, scheduler=curriculum)
    vec.reset(seed=0)
    vec.action_space.seed(0)
    seen = []
    for _ in range(400):
        seen.append(int(vec.task_ids[0]))
        obs, *_ = vec.step(vec.action_space.sample())
        family = int(np.argmax(obs["observation"][0, -2:]))
        assert family == vec.task_family[vec.task_ids[0]]  # the padding follows the task
    assert seen[0] == 0 and seen[-1] == 1  # Navigation2D first, then Pendulum
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(vec.unwrapped.envs[0], skip_render_check=True)  # type: ignore[attr-defined]
    vec.close()


def test_sb3_ppo_trains_on_a_mixture() -> None:
    cfg = MultiTaskEnvConfig(name="pendulum+navigation2d", num_tasks=1)
    venv = SB3MultiTaskVecEnv(make_multitask_env(cfg))
    model = PPO("MultiInputPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0)
    model.learn(128)
    actions, _ = model.predict(venv.reset(), deterministic=True)
    assert actions.shape == (2, 2)  # Navigation2D's two action dimensions are the widest
    venv.close()


def test_mtsac_trains_and_evaluates_on_a_mixture(tmp_path: Path) -> None:
    _, recipe = parse_recipe(
        {
            "kind": "mtsac",
            "total_steps": 400,
            "learning_starts": 200,
            "batch_size": 32,
            "eval_every": 400,
            "eval_episodes": 1,
            "checkpoint_every": 400,
            "env": {"name": ["pendulum", "navigation2d"], "num_tasks": 1},
            "sac": {"actor": {"hidden": [16, 16]}, "critic": {"hidden": [16, 16]}},
        },
        "test",
    )
    train_mtsac(recipe, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["env"] == "pendulum+navigation2d"
    labels = [row["task"] for row in summary["results"]["per_task"]]
    assert labels[0].startswith("pendulum[") and labels[1].startswith("navigation2d[")


def test_a_member_env_re_made_from_its_spec_keeps_its_padding() -> None:
    vec = make_multitask_env(MultiTaskEnvConfig(name="pendulum+navigation2d", num_tasks=1))
    sub: gym.Env = vec.unwrapped.envs[1]  # type: ignore[attr-defined]
    assert sub.spec is not None
    again = sub.spec.make()
    assert again.observation_space == sub.observation_space
    assert again.action_space == sub.action_space
    vec.close()
