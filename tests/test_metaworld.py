"""Meta-World suites through mtrl: counts, splits, reward version and the expert check."""

from __future__ import annotations

import numpy as np
import pytest

from mtrl.envs import get_family
from mtrl.envs.metaworld_suites import CW10, metaworld_task
from mtrl.envs.policies import metaworld_expert_policy
from mtrl.envs.rollout import rollout
from mtrl.envs.vector import MultiTaskEnvConfig, make_multitask_env
from mtrl.errors import ConfigError


def test_mt10_suite_tasks_and_counts() -> None:
    mt10 = get_family("MT10")
    tasks = mt10.tasks("train")
    assert len(tasks) == mt10.num_train == 10
    assert tasks[0].label == "reach-v3"
    assert mt10.tasks("test") == []


def test_ml10_train_and_test_classes_are_disjoint() -> None:
    ml10 = get_family("ML10")
    train, test = ml10.tasks("train"), ml10.tasks("test")
    assert (len(train), len(test)) == (ml10.num_train, ml10.num_test) == (500, 250)
    train_envs = {t["env_name"] for t in train}
    test_envs = {t["env_name"] for t in test}
    assert len(train_envs) == 10 and len(test_envs) == 5 and not train_envs & test_envs


def test_ml1_goals_are_hidden_and_fixed_per_task() -> None:
    ml1 = get_family("ML1:reach-v3")
    task = ml1.tasks("test")[3]
    env = ml1.make_env(task)
    obs1, info = env.reset(seed=0)
    obs2, _ = env.reset(seed=1)
    assert info["goal_index"] == 3
    assert np.all(obs1[-3:] == 0)  # goal hidden in meta-learning suites
    assert np.array_equal(obs1, obs2)  # the same goal variant every episode


def test_cw_sequences_keep_their_order() -> None:
    assert [t.label for t in get_family("CW10").tasks()] == list(CW10)
    assert [t.label for t in get_family("CW20").tasks()] == list(CW10) * 2


def test_reward_function_version_reaches_the_env() -> None:
    task = metaworld_task("MT1:push-v3", 0, "train", "push-v3", goal=0)
    rewards = {}
    for version in ("v1", "v2"):
        env = get_family("MT1:push-v3").make_env(task, reward_function_version=version)
        env.reset(seed=0)
        rewards[version] = env.step(np.array([0.5, 0.5, 0.0, 0.0], dtype=np.float32))[1]
        assert env.unwrapped.reward_function_version == version
    assert rewards["v1"] != rewards["v2"]


def test_a_reward_version_without_a_metaworld_task_is_refused_before_a_run() -> None:
    """``env.reward_version`` chooses Meta-World's reward: on other families it would
    change nothing, so a recipe setting it there is refused rather than run as V2;
    a mixture with a Meta-World member keeps it."""
    env = MultiTaskEnvConfig(name="pendulum", num_tasks=1, reward_version="success")
    with pytest.raises(ConfigError, match=r"reward_version = 'success'.*pendulum has no Meta"):
        make_multitask_env(env)
    mixed = MultiTaskEnvConfig(name="pendulum+MT10", num_tasks=[1, 1], reward_version="v1")
    vec = make_multitask_env(mixed)
    vec.close()


def test_success_reward_is_the_success_flag_of_the_same_dynamics() -> None:
    """``reward_version = "success"``: the scripted expert's reach episode under it and
    under V2 steps identically; its reward is 1 exactly where V2's info flags success
    (V2's reward there and just before is ~10 either side of the success radius)."""
    task = metaworld_task("MT1:reach-v3", 0, "train", "reach-v3", goal=3)
    family = get_family("MT1:reach-v3")
    envs = {v: family.make_env(task, reward_function_version=v) for v in ("v2", "success")}
    policy = metaworld_expert_policy([task], np.zeros(1, dtype=np.int64))
    obs = {v: env.reset(seed=0)[0] for v, env in envs.items()}
    flags, sparse, dense = [], [], []
    for _ in range(120):
        action = policy({"observation": obs["v2"][None], "task_id": np.zeros(1)})[0]
        for version, env in envs.items():
            obs[version], reward, _, _, info = env.step(action)
            (sparse if version == "success" else dense).append(reward)
            if version == "v2":
                flags.append(float(info["success"]))
        assert np.array_equal(obs["v2"], obs["success"])
    assert sparse == flags and 0 < sum(flags) < len(flags)  # reached the goal part-way
    first = flags.index(1.0)
    assert dense[first - 1] > 9.0 and sparse[first - 1] == 0.0  # V2 cannot see the radius
    with pytest.raises(ValueError, match="'v1', 'v2' or 'success'"):
        family.make_env(task, reward_function_version="v3")


@pytest.mark.slow
def test_scripted_experts_succeed_on_every_mt10_task_through_the_vector_env() -> None:
    env = make_multitask_env(MultiTaskEnvConfig(name="MT10"))
    policy = metaworld_expert_policy(env.tasks, env.task_ids)
    rows = rollout(env, policy, episodes_per_task=5, seed=0)
    env.close()
    for row in rows:
        assert row["episodes"] == 5
        assert row["success"] >= 0.8, row
