"""Worker processes hosting several sub-envs: same trajectories and infos as the sync env."""

from __future__ import annotations

import functools
import itertools
import json
import re
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from mtrl.envs.vector import MultiTaskEnvConfig, Vectorization, make_multitask_env
from mtrl.envs.workers import WorkerVectorEnv, balanced_groups, merge_infos, slices


def test_slices_are_contiguous_near_equal_and_never_empty() -> None:
    assert slices(10, 2) == [slice(0, 5), slice(5, 10)]
    assert slices(10, 3) == [slice(0, 3), slice(3, 7), slice(7, 10)]
    assert slices(2, 16) == [slice(0, 1), slice(1, 2)]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) and a.dtype == object:
        return b.dtype == object and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return bool(a == b) if a is not None else b is None


def _pendulum(steps: int) -> gym.Env[Any, Any]:
    env = gym.make("Pendulum-v1", max_episode_steps=steps)
    return gym.wrappers.TransformObservation(
        env,
        lambda o: {"x": o, "k": np.int64(steps)},
        gym.spaces.Dict({"x": env.observation_space, "k": gym.spaces.Discrete(100)}),
    )


def test_merged_infos_equal_one_vector_env_over_all_sub_envs() -> None:
    # episodes end at different steps, so keys appear for some sub-envs only
    fns = [functools.partial(_pendulum, s) for s in (3, 5, 4, 7, 3)]
    whole = gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    groups = [
        gym.vector.SyncVectorEnv(fns[p], autoreset_mode=AutoresetMode.SAME_STEP)
        for p in slices(5, 2)
    ]
    sizes = [g.num_envs for g in groups]
    _, info = whole.reset(seed=0)
    parts = [
        g.reset(seed=list(range(p.start, p.stop)))[1]
        for g, p in zip(groups, slices(5, 2), strict=True)
    ]
    assert _same(merge_infos(parts, sizes), info)
    rng = np.random.default_rng(0)
    for _ in range(12):
        a = rng.uniform(-2, 2, (5, 1)).astype(np.float32)
        info = whole.step(a)[4]
        parts = [g.step(a[p])[4] for g, p in zip(groups, slices(5, 2), strict=True)]
        assert _same(merge_infos(parts, sizes), info)


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_workers_follow_the_sync_env_step_for_step(workers: int) -> None:
    def trace(vectorization: Vectorization) -> list[np.ndarray]:
        cfg = MultiTaskEnvConfig(
            name="pendulum",
            num_tasks=3,
            envs_per_task=2,
            max_episode_steps=25,
            vectorization=vectorization,
            workers=workers,
        )
        env = make_multitask_env(cfg)
        rng = np.random.default_rng(1)
        obs, _ = env.reset(seed=7)
        out = [obs["observation"], obs["task_id"]]
        for _ in range(60):
            obs, rew, term, trunc, _ = env.step(rng.uniform(-2, 2, (6, 1)).astype(np.float32))
            out += [obs["observation"], rew, term, trunc]
        out.append(np.array([r["return"] for r in env.episode_statistics()]))
        env.close()
        return out

    sync, workers_trace = trace("sync"), trace("async")
    assert all(np.array_equal(a, b) for a, b in zip(sync, workers_trace, strict=True))


def test_observations_returned_are_not_overwritten_by_the_next_step() -> None:
    env = make_multitask_env(
        MultiTaskEnvConfig(name="pendulum", num_tasks=2, vectorization="async", workers=2)
    )
    first, _ = env.reset(seed=0)
    kept = first["observation"].copy()
    env.step(np.ones((2, 1), dtype=np.float32))
    np.testing.assert_array_equal(first["observation"], kept)
    env.close()


def test_a_failing_sub_env_is_reported_not_hung() -> None:
    env = WorkerVectorEnv([functools.partial(_pendulum, 5)] * 2, workers=2)
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="env worker"):
        env.call("no_such_method")
    env.close()


def test_a_killed_worker_is_named_with_its_sub_envs() -> None:
    """kill -9 (the OOM killer) on one worker: the next step says which worker, its
    sub-envs and how it died, instead of a bare ConnectionResetError."""
    import os
    import signal

    from mtrl.errors import MtrlError

    env = WorkerVectorEnv([functools.partial(_pendulum, 5)] * 4, workers=2)
    env.reset(seed=0)
    dead = env._procs[1]
    os.kill(dead.pid or 0, signal.SIGKILL)
    dead.join(timeout=10)
    actions = np.zeros((4, 1), dtype=np.float32)
    group = re.escape(str(env.groups[1]))
    named = rf"env worker 1 \(pid {dead.pid}, sub-envs {group}\) killed by SIGKILL"
    with pytest.raises(MtrlError, match=named):
        env.step(actions)
    env.close()


def test_call_get_attr_and_set_attr_reach_every_sub_env() -> None:
    env = make_multitask_env(
        MultiTaskEnvConfig(name="pendulum", num_tasks=3, vectorization="async", workers=2)
    )
    assert env.get_attr("task_index") == (0, 1, 2)
    env.set_attr("marker", [5, 6, 7])
    assert env.get_attr("marker") == (5, 6, 7)
    env.close()


def test_bench_env_times_workers_metaworld_and_sync_in_one_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mtrl.cli import main

    args = ["bench", "env", "--vectorization", "async", "--steps", "3", "--repeats", "1"]
    assert main([*args, "--workers", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["steps_per_s"]) == {"mtrl", "metaworld", "mtrl_sync", "mtrl_contiguous"}
    assert doc["workers"] == 2 and doc["ratio_to_sync"] > 0
    assert sorted(i for g in doc["groups"] for i in g) == list(range(10))


def _makespan(costs: list[float], groups: list[list[int]]) -> float:
    return max(sum(costs[i] for i in g) for g in groups)


def test_balanced_groups_by_hand_and_within_the_lpt_bound_of_the_optimum() -> None:
    # MT10-like costs (ms): contiguous halves load 5.32 vs 3.12. Longest first, each to
    # the lighter worker: 2 1 0 7 3 4 6 5 9 8 go to A B B A B A A B A B -> 4.20 vs 4.24
    mt10 = [1.03, 1.33, 1.42, 0.88, 0.66, 0.62, 0.65, 0.98, 0.38, 0.49]
    groups = balanced_groups(mt10, 2)
    assert groups == [[0, 1, 3, 5, 8], [2, 4, 6, 7, 9]]
    assert _makespan(mt10, groups) == pytest.approx(4.24)
    assert balanced_groups([1.0, 1.0], 5) == [[0], [1]]
    rng = np.random.default_rng(0)
    for _ in range(40):
        n, m = int(rng.integers(2, 9)), int(rng.integers(2, 4))
        costs = rng.uniform(0.1, 3.0, n).tolist()
        groups = balanced_groups(costs, m)
        assert sorted(i for g in groups for i in g) == list(range(n)) and all(groups)
        # brute force over every assignment: LPT is within (4/3 - 1/(3m)) of the optimum
        best = min(
            max(sum(c for c, w in zip(costs, a, strict=True) if w == k) for k in range(m))
            for a in itertools.product(range(m), repeat=n)
        )
        assert _makespan(costs, groups) <= (4 / 3 - 1 / (3 * m)) * best + 1e-12


def test_non_contiguous_groups_equal_one_vector_env_over_all_sub_envs() -> None:
    fns = [functools.partial(_pendulum, s) for s in (3, 5, 4, 7, 3, 6)]
    whole = gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    env = WorkerVectorEnv(fns, groups=[[4, 0, 3], [1, 5], [2]])
    assert env.groups == [[0, 3, 4], [1, 5], [2]]
    assert all(map(_same, env.reset(seed=3), whole.reset(seed=3)))
    rng = np.random.default_rng(0)
    for _ in range(12):
        a = rng.uniform(-2, 2, (6, 1)).astype(np.float32)
        assert all(map(_same, env.step(a), whole.step(a)))
    env.set_attr("marker", [5, 6, 7, 8, 9, 10])
    assert env.get_attr("marker") == (5, 6, 7, 8, 9, 10)
    env.close()
    with pytest.raises(ValueError, match="each index once"):
        WorkerVectorEnv(fns, groups=[[0, 1], [1, 2, 3, 4, 5]])


def test_balancing_times_every_sub_env_and_keeps_the_trajectories() -> None:
    # the sync-equality test above runs balanced workers; here the probe's own output
    fns = [functools.partial(_pendulum, s) for s in (3, 5, 4, 7, 3)]
    env = WorkerVectorEnv(fns, workers=2, probe_steps=5)
    assert env.step_costs is not None and len(env.step_costs) == 5
    assert all(c > 0 for c in env.step_costs)
    assert env.groups == balanced_groups(env.step_costs, 2)
    whole = gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    assert all(map(_same, env.reset(seed=1), whole.reset(seed=1)))
    a = np.ones((5, 1), dtype=np.float32)
    for _ in range(8):
        assert all(map(_same, env.step(a), whole.step(a)))
    env.close()
