"""Demonstration datasets: collected into Minari, read back by Minari, checked against
the env they are used with."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import minari
import numpy as np
import pytest

import mtrl.collect as collect_mod
from mtrl.cli import main
from mtrl.collect import collect, dataset_id
from mtrl.demos.dataset import (
    check_matches,
    list_datasets,
    open_dataset,
    per_task_summary,
    transitions,
)
from mtrl.envs.vector import MultiTaskEnvConfig, make_multitask_env
from mtrl.errors import MtrlError
from mtrl.recipes import parse_recipe

HORIZON = 80


@pytest.fixture(scope="module")
def mt10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    collect("MT10", "expert", 2, root, seed=3, max_episode_steps=HORIZON)
    return root


def test_minari_reads_back_what_the_env_produced(mt10: Path) -> None:
    """Replaying each task's first stored actions in a fresh env with the same seed
    gives the stored observations and rewards exactly."""
    os.environ["MINARI_DATASETS_PATH"] = str(mt10)  # as any Minari-aware tool would
    try:
        data = minari.load_dataset("mtrl/mt10-expert-v0")
    finally:
        del os.environ["MINARI_DATASETS_PATH"]
    assert data.total_episodes == 20 and data.total_steps == 20 * HORIZON
    first: dict[int, object] = {}
    for ep in data.iterate_episodes():
        first.setdefault(int(ep.observations["task_id"][0]), ep)
    episodes = [first[t] for t in range(10)]
    env = make_multitask_env(
        MultiTaskEnvConfig(name="MT10", autoreset_mode="next_step", max_episode_steps=HORIZON)
    )
    obs, _ = env.reset(seed=3)
    stored_obs = np.stack([e.observations["observation"] for e in episodes], axis=1)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(obs["observation"].astype(np.float32), stored_obs[0])
    for t in range(HORIZON):
        action = np.stack([e.actions[t] for e in episodes])  # type: ignore[attr-defined]
        obs, reward, _, trunc, _ = env.step(action)
        np.testing.assert_array_equal(obs["observation"].astype(np.float32), stored_obs[t + 1])
        np.testing.assert_allclose(reward, [e.rewards[t] for e in episodes], rtol=1e-6)  # type: ignore[attr-defined]
    assert trunc.all() and all(e.truncations[-1] for e in episodes)  # type: ignore[attr-defined]
    env.close()


def test_metadata_summaries_and_transitions(mt10: Path) -> None:
    data = open_dataset("mtrl/mt10-expert-v0", mt10)
    meta = data.storage.metadata
    assert meta["mtrl_env"] == "MT10" and meta["mtrl_policy"] == "expert"
    assert meta["mtrl_reward_version"] == "v2" and meta["mtrl_tasks"][0] == "reach-v3"
    rows = per_task_summary(data)
    assert [r["episodes"] for r in rows] == [2] * 10
    assert all(
        r["success"] == 1.0 for r in rows[:4]
    )  # reach, push, pick-place, door-open in 80 steps
    [listed] = list_datasets(mt10)
    assert listed["episodes"] == 20 and listed["tasks"] == 10 and listed["env"] == "MT10"
    tr = transitions(data)
    assert tr["obs"].shape == (20 * HORIZON, 39) and tr["action"].shape == (20 * HORIZON, 4)
    np.testing.assert_array_equal(np.bincount(tr["task_id"]), [2 * HORIZON] * 10)
    first = transitions(data, episodes_per_task=1)  # each task's first episode
    np.testing.assert_array_equal(np.bincount(first["task_id"]), [HORIZON] * 10)
    rows_of = {int(t): np.flatnonzero(tr["task_id"] == t)[:HORIZON] for t in range(10)}
    for t, rows_t in rows_of.items():
        np.testing.assert_array_equal(first["obs"][first["task_id"] == t], tr["obs"][rows_t])
    with pytest.raises(MtrlError, match=r"episodes_per_task = 3.*collect more"):
        transitions(data, episodes_per_task=3)


def test_a_dataset_for_another_env_or_missing_is_refused_clearly(mt10: Path) -> None:
    data = open_dataset("mtrl/mt10-expert-v0", mt10)
    ok = make_multitask_env(MultiTaskEnvConfig(name="MT10"))
    check_matches(data, ok)
    ok.close()
    nav = make_multitask_env(MultiTaskEnvConfig(name="navigation2d", num_tasks=2))
    with pytest.raises(MtrlError, match=r"\(39,\).*\(2,\)"):
        check_matches(data, nav)
    nav.close()
    other = make_multitask_env(MultiTaskEnvConfig(name="MT50", num_tasks=10))
    with pytest.raises(MtrlError, match="holds tasks"):
        check_matches(data, other)
    other.close()
    with pytest.raises(MtrlError, match="mtrl demos collect"):
        open_dataset("mtrl/mt50-expert-v0", mt10)
    with pytest.raises(MtrlError, match="already exists"):
        collect("MT10", "expert", 1, mt10)


def test_successes_only_keeps_the_episodes_that_succeed(mt10: Path, tmp_path: Path) -> None:
    """Push's expert in 60 steps succeeds in episodes 3, 6 and 7 of 8 (seed 3): those
    episodes' steps, in order, are what ``successes_only`` keeps."""
    collect("MT1:push-v3", "expert", 8, tmp_path, seed=3, max_episode_steps=60)
    data = open_dataset(dataset_id("MT1:push-v3", "expert"), tmp_path)
    flags = [bool(np.max(ep.infos["success"])) for ep in data.iterate_episodes()]
    assert flags == [False, False, False, True, False, False, True, True]
    every, hits = transitions(data), transitions(data, successes_only=True)
    rows = np.concatenate([np.arange(60 * e, 60 * (e + 1)) for e in (3, 6, 7)])
    for key in every:
        np.testing.assert_array_equal(hits[key], every[key][rows])
    first = transitions(data, episodes_per_task=2, successes_only=True)
    np.testing.assert_array_equal(first["obs"], every["obs"][rows[:120]])
    with pytest.raises(MtrlError, match=r"fewer successful episodes for tasks \{0: 3\}"):
        transitions(data, episodes_per_task=4, successes_only=True)
    # MT10's expert in 80 steps never succeeds on some tasks: refused, naming them
    mt10_data = open_dataset("mtrl/mt10-expert-v0", mt10)
    never = [r["task_id"] for r in per_task_summary(mt10_data) if r["success"] == 0.0]
    assert never == [4, 7, 8, 9]
    with pytest.raises(MtrlError, match=re.escape(f"no successful episode for tasks {never}")):
        transitions(mt10_data, successes_only=True)


def test_an_interrupted_collection_keeps_finished_episodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expert = collect_mod.policy_actions
    calls = {"n": 0}

    def ctrl_c_later(policy: str, env: object, trained: object) -> object:
        act = expert(policy, env, trained)

        def wrapped(obs: object) -> np.ndarray:
            calls["n"] += 1
            if calls["n"] > 25:  # Ctrl-C in the second episode of every task
                raise KeyboardInterrupt
            return act(obs)

        return wrapped

    monkeypatch.setattr(collect_mod, "policy_actions", ctrl_c_later)
    with pytest.raises(KeyboardInterrupt):
        collect("MT10", "expert", 5, tmp_path, max_episode_steps=20)
    data = open_dataset(dataset_id("MT10", "expert"), tmp_path)
    assert data.total_episodes == 10  # each task's first episode


def _tiny_run(env: str, run_dir: Path) -> None:
    kind, cfg = parse_recipe(
        tomllib.loads(
            'kind = "mtsac"\ntotal_steps = 200\nlearning_starts = 100\nbatch_size = 32\n'
            f'eval_episodes = 1\n[env]\nname = "{env}"\nnum_tasks = 2\n'
            "[sac.actor]\nhidden = [8]\n[sac.critic]\nhidden = [8]\n"
        ),
        "r",
    )
    kind.train(cfg, run_dir)


def test_successes_only_is_refused_for_an_env_without_success_flags(tmp_path: Path) -> None:
    _tiny_run("pendulum", tmp_path / "run")
    collect("pendulum", str(tmp_path / "run"), 1, tmp_path / "ds", max_episode_steps=20)
    data = open_dataset("mtrl/pendulum-run-v0", tmp_path / "ds")
    assert transitions(data)["obs"].shape[0] == 40
    with pytest.raises(MtrlError, match="stores no success flags"):
        transitions(data, successes_only=True)


def test_collect_from_a_trained_run_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _tiny_run("navigation2d", tmp_path / "run")
    root = tmp_path / "ds"
    argv = ["demos", "collect", "navigation2d", "--policy", str(tmp_path / "run")]
    assert main([*argv, "--episodes", "2", "--out", str(root)]) == 0
    out = capsys.readouterr().out
    assert "mtrl/navigation2d-run-v0" in out
    assert main(["demos", "info", "mtrl/navigation2d-run-v0", "--root", str(root)]) == 0
    assert "4 episodes" in capsys.readouterr().out
    assert main(["demos", "collect", "navigation2d", "--policy", "expert"]) == 2
