"""Sub-envs re-bound between episodes by a curriculum (mtrl.envs.slots)."""

from __future__ import annotations

import numpy as np
import pytest

from mtrl.curriculum import Curriculum, CurriculumConfig
from mtrl.envs.vector import MultiTaskEnvConfig, make_multitask_env, resolve_tasks
from mtrl.errors import ConfigError, UnknownNameError


def _step_until(env, n: int) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    seen = []
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(n):
        seen.append(np.asarray(obs["task_id"]).copy())
        obs, *_ = env.step(env.action_space.sample())
    return seen


def test_budget_chain_rebinds_sub_envs_and_never_runs_locked_tasks() -> None:
    cfg = MultiTaskEnvConfig(name="pendulum", num_tasks=3, order="difficulty", num_envs=2)
    cur = Curriculum(CurriculumConfig(unlock="budget", budget=400), 3, seed=0)
    with make_multitask_env(cfg, scheduler=cur) as env:
        assert env.num_envs == 2
        seen = _step_until(env, 1000)  # pendulum episodes: 200 steps
        ids = np.stack(seen)
        # the obs task ids are the sub-envs' current tasks
        np.testing.assert_array_equal(ids[-1], env.task_ids)
        for t, row in enumerate(ids):
            unlocked_by_then = 1 + min(2, (2 * t) // 400)
            assert row.max() < unlocked_by_then + 1
        # task 0 ran its 400 steps, then the sub-envs moved on at episode ends
        assert ids[0].tolist() == [0, 0] and ids[-1].tolist() == [2, 2]
        assert cur.steps.tolist()[0] == 400
        stats = env.episode_statistics()
        assert stats[0]["episodes"] == 2 and stats[1]["episodes"] == 2


@pytest.mark.parametrize("action_seed", [0, 1, 2])
def test_stats_and_task_ids_follow_the_rebound_task(action_seed: int) -> None:
    cfg = MultiTaskEnvConfig(name="navigation2d", num_tasks=2, num_envs=1)
    cur = Curriculum(CurriculumConfig(unlock="all", sampler="uniform"), 2, seed=4)
    with make_multitask_env(cfg, scheduler=cur) as env:
        obs, _ = env.reset(seed=1)
        env.action_space.seed(action_seed)
        seen, ended = set(), 0
        for _ in range(2000):
            obs, _, term, trunc, info = env.step(env.action_space.sample())
            if term[0] or trunc[0]:
                ended += 1
                assert info["final_info"]["task_episode"]["task_id"][0] in (0, 1)
            seen.add(int(obs["task_id"][0]))
        assert seen == {0, 1}
        counts = [r["episodes"] for r in env.episode_statistics()]
        # every episode ends by the 100-step horizon, some earlier at the goal: at least
        # 20 in 2,000 steps, and the statistics count each one once, under its own task
        assert sum(counts) == ended >= 20 and min(counts) > 0
        assert cur.episodes.tolist() == counts


def test_metaworld_pool_switches_env_class_and_is_deterministic() -> None:
    cfg = MultiTaskEnvConfig(
        name="CW10", tasks=["push-wall-v3", "faucet-close-v3"], num_envs=1, max_episode_steps=20
    )

    def run() -> tuple[list[int], np.ndarray]:
        cur = Curriculum(CurriculumConfig(unlock="budget", budget=40), 2, seed=0)
        with make_multitask_env(cfg, scheduler=cur) as env:
            seen = _step_until(env, 80)
            pool = env.unwrapped.envs[0].pool  # type: ignore[attr-defined]
            assert sorted(pool._members) == ["faucet-close-v3", "push-wall-v3"]
            obs, *_ = env.step(np.zeros((1, 4), dtype=np.float32))
            return [int(s[0]) for s in seen], obs["observation"]

    ids, obs = run()
    assert ids[:40] == [0] * 40 and ids[40:] == [1] * 40
    ids2, obs2 = run()
    assert ids == ids2
    np.testing.assert_array_equal(obs, obs2)


def test_task_selection_by_label_params_and_difficulty() -> None:
    tasks = resolve_tasks(MultiTaskEnvConfig(name="MT50", tasks=["push-v3", "reach-v3"]))
    assert [t.label for t in tasks] == ["push-v3", "reach-v3"]
    with pytest.raises(UnknownNameError, match="reach-v3"):
        resolve_tasks(MultiTaskEnvConfig(name="MT10", tasks=["reach-v2"]))
    vel = resolve_tasks(
        MultiTaskEnvConfig(
            name="halfcheetah-vel",
            task_params=[{"velocity": 2.0}, {"velocity": 0.5}],
            order="difficulty",
        )
    )
    assert [t["velocity"] for t in vel] == [0.5, 2.0]
    with pytest.raises(ConfigError, match="unknown parameters"):
        resolve_tasks(MultiTaskEnvConfig(name="halfcheetah-vel", task_params=[{"speed": 1.0}]))
    with pytest.raises(ConfigError, match="no difficulty measure"):
        resolve_tasks(MultiTaskEnvConfig(name="MT10", order="difficulty"))


def test_curriculum_needs_sync_sub_envs() -> None:
    cur = Curriculum(CurriculumConfig(), 2, seed=0)
    with pytest.raises(ConfigError, match="vectorization = 'sync'"):
        make_multitask_env(
            MultiTaskEnvConfig(name="navigation2d", num_tasks=2, vectorization="async"), cur
        )
