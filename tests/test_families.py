from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from mtrl.envs import get_family, register_envs
from mtrl.envs.checks import check_family
from mtrl.envs.classic import CARTPOLE, PENDULUM
from mtrl.envs.mujoco_families import HALFCHEETAH_VEL, HOPPER_PARAMS
from mtrl.envs.navigation import NAVIGATION2D
from mtrl.envs.registry import parametric_families
from mtrl.envs.wrappers import TaskResampling
from mtrl.errors import UnknownNameError
from mtrl.kinds.held_out import tasks_are_held_out
from mtrl.tasks import Task, TaskMismatchError


@pytest.mark.parametrize("name", sorted(parametric_families()))
def test_every_family_passes_env_checker_and_is_deterministic(name: str) -> None:
    result = check_family(name, seed=3)
    assert result.env_checker == "ok"
    assert result.determinism == "ok"
    assert result.task_sampling == "ok"


@pytest.mark.parametrize("name", sorted(parametric_families()))
def test_gym_make_registered_id_with_task(name: str) -> None:
    register_envs()
    fam = get_family(name)
    task = fam.sample_tasks(1, np.random.default_rng(0))[0]
    env = gym.make(fam.env_id, task=task)
    assert env.unwrapped.get_task() == task
    env.reset(seed=0)
    env.action_space.seed(0)
    env.step(env.action_space.sample())


def test_train_and_test_tasks_are_fixed_per_seed_and_disjoint() -> None:
    train, test = CARTPOLE.tasks("train", seed=1), CARTPOLE.tasks("test", seed=1)
    assert train == CARTPOLE.tasks("train", seed=1)
    assert len(train) == 40 and len(test) == 10
    assert not set(train) & set(test)
    assert train != CARTPOLE.tasks("train", seed=2)


@pytest.mark.parametrize(
    ("name", "key", "values"),
    [("halfcheetah-dir", "direction", [-1.0, 1.0]), ("ant-dir", "angle", [0.0, math.pi])],
)
def test_a_direction_family_has_its_two_tasks_in_both_splits(
    name: str, key: str, values: list[float]
) -> None:
    fam = get_family(name)
    every = [t.as_dict()[key] for t in fam.tasks("train", seed=3)]
    assert every == values == [t.as_dict()[key] for t in fam.tasks("test", seed=3)]
    assert [t.as_dict()[key] for t in fam.distinct_tasks() or []] == values
    # draws are uniform over the two, as numpy's choice over the list draws them
    drawn = [t.as_dict()[key] for t in fam.sample_tasks(200, np.random.default_rng(7))]
    rng = np.random.default_rng(7)
    assert drawn == [float(rng.choice(values)) for _ in range(200)]
    assert HALFCHEETAH_VEL.distinct_tasks() is None
    # `mtrl adapt` says its curves are on the tasks trained on, not held-out ones
    assert not tasks_are_held_out(fam) and tasks_are_held_out(HALFCHEETAH_VEL)


def test_tasks_are_hashable_and_named() -> None:
    t = Task.make("navigation2d", {"goal": np.array([0.1, -0.2])})
    assert {t: 1}[Task.make("navigation2d", {"goal": (0.1, -0.2)})] == 1
    assert t.name == "navigation2d[goal=(0.1,-0.2)]"


def test_task_physics_changes_dynamics() -> None:
    def trace(task: Task) -> np.ndarray:
        env = CARTPOLE.make_env(task)
        env.reset(seed=0)
        return np.array([env.step(1)[0] for _ in range(5)])

    heavy = Task.make("cartpole", {**CARTPOLE.default_task().as_dict(), "gravity": 13.0})
    assert not np.allclose(trace(CARTPOLE.default_task()), trace(heavy))


def test_difficulty_ordering() -> None:
    easy = Task.make("pendulum", {"gravity": 5.0, "mass": 0.5, "length": 0.5})
    hard = Task.make("pendulum", {"gravity": 15.0, "mass": 1.5, "length": 1.5})
    assert PENDULUM.by_difficulty([hard, easy]) == [easy, hard]
    tasks = CARTPOLE.by_difficulty(CARTPOLE.tasks("train"))
    d = [CARTPOLE.difficulty(t.as_dict()) for t in tasks]  # type: ignore[misc]
    assert d == sorted(d)
    assert math.isclose(CARTPOLE.difficulty(CARTPOLE.default_task().as_dict()), 1.0)  # type: ignore[misc]


def test_navigation_reward_is_negative_distance_and_goal_terminates() -> None:
    task = Task.make("navigation2d", {"goal": (0.05, 0.0)})
    env = NAVIGATION2D.make_env(task)
    env.reset(seed=0)
    obs, reward, terminated, _, _ = env.step(
        np.array([0.5, 0.0], dtype=np.float32)
    )  # clipped to 0.1
    assert np.allclose(obs, [0.1, 0.0]) and math.isclose(reward, -0.05, abs_tol=1e-9)
    assert not terminated
    _, _, terminated, _, _ = env.step(np.array([-0.05, 0.0], dtype=np.float32))
    assert terminated
    assert env.spec is not None and env.spec.max_episode_steps == 100


def test_halfcheetah_vel_reward_matches_definition() -> None:
    task = Task.make("halfcheetah-vel", {"velocity": 1.5})
    env = HALFCHEETAH_VEL.make_env(task)
    env.reset(seed=0)
    action = np.full(6, 0.5, dtype=np.float32)
    _, reward, _, _, info = env.step(action)
    expected = -abs(info["x_velocity"] - 1.5) - 0.05 * float(np.sum(action**2))
    assert math.isclose(reward, expected, rel_tol=1e-6)


def test_body_params_scale_the_model() -> None:
    env = HOPPER_PARAMS.make_env()
    base = env.unwrapped.model.body_mass.copy()
    task = HOPPER_PARAMS.sample_tasks(1, np.random.default_rng(0))[0]
    HOPPER_PARAMS.set_task(env, task)
    assert np.allclose(env.unwrapped.model.body_mass, base * np.asarray(task["body_mass"]))
    HOPPER_PARAMS.set_task(env, HOPPER_PARAMS.default_task())
    assert np.allclose(env.unwrapped.model.body_mass, base)


def test_wrong_family_task_and_unknown_names_are_clear() -> None:
    env = CARTPOLE.make_env()
    with pytest.raises(TaskMismatchError, match="takes tasks of family 'cartpole'"):
        CARTPOLE.set_task(env, PENDULUM.default_task())
    with pytest.raises(UnknownNameError, match="Did you mean: halfcheetah-vel"):
        get_family("halfcheetah-velocity")
    with pytest.raises(UnknownNameError, match="MT1:reach-v3"):
        get_family("MT1:reach")


def test_task_resampling_draws_a_new_task_per_episode_reproducibly() -> None:
    def draws(seed: int) -> list[Task]:
        env = TaskResampling(NAVIGATION2D.make_env(), family=NAVIGATION2D)
        env.reset(seed=seed)
        out = [env.task]
        for _ in range(3):
            env.reset()
            out.append(env.task)
        return out  # type: ignore[return-value]

    a = draws(4)
    assert a == draws(4) and len(set(a)) == 4


@pytest.mark.parametrize("name", ["hopper-params", "walker2d-params"])
def test_body_parameter_difficulty(name: str) -> None:
    """Total mass over sliding friction, relative to the default body; one multiplier
    may stand for every element."""
    family = get_family(name)
    measure = family.difficulty  # type: ignore[attr-defined]
    assert measure(family.default_task().as_dict()) == pytest.approx(1.0)  # type: ignore[attr-defined]
    heavy = Task.make(name, {**family.default_task().as_dict(), "body_mass": 2.0})  # type: ignore[attr-defined]
    slippery = Task.make(name, {**family.default_task().as_dict(), "geom_friction": 0.5})  # type: ignore[attr-defined]
    assert measure(heavy.as_dict()) == pytest.approx(2.0)
    assert measure(slippery.as_dict()) == pytest.approx(2.0)
    env = family.make_env(heavy)
    try:
        base = family.make_env()
        assert np.allclose(env.unwrapped.model.body_mass, 2.0 * base.unwrapped.model.body_mass)  # type: ignore[attr-defined]
        base.close()
    finally:
        env.close()
