"""Self-imitation: growing demonstrations, and successful episodes of a real MT10 env
(driven by Meta-World's experts on some tasks) added exactly, also across a resume."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from mtrl.demos.config import DemosConfig
from mtrl.demos.regulariser import RegulariserConfig
from mtrl.demos.replay import DemoReplay
from mtrl.demos.self_imitation import SelfImitation, SelfImitationConfig, episode_successes
from mtrl.envs.policies import metaworld_expert_policy
from mtrl.envs.vector import MultiTaskEnvConfig, make_multitask_env, resolve_tasks

HORIZON = 120


def _rows(n: int, value: float, obs_dim: int = 3, act_dim: int = 2) -> dict[str, np.ndarray]:
    return {
        "obs": np.full((n, obs_dim), value, dtype=np.float32),
        "action": np.full((n, act_dim), value, dtype=np.float32),
        "reward": np.full(n, value, dtype=np.float32),
        "next_obs": np.full((n, obs_dim), value, dtype=np.float32),
        "terminated": np.zeros(n, dtype=np.float32),
    }


def test_extend_grows_the_storage_and_keeps_what_was_there() -> None:
    base = _rows(4, 1.0) | {"task_id": np.array([0, 0, 0, 0])}
    replay = DemoReplay(base, num_tasks=3)
    assert replay.tasks().tolist() == [0]
    replay.extend(2, _rows(7, 5.0))  # beyond the width of 4
    replay.extend(0, _rows(2, 3.0))
    assert replay.size.tolist() == [6, 0, 7] and replay.tasks().tolist() == [0, 2]
    assert replay.obs[0, :4].eq(1.0).all() and replay.obs[0, 4:6].eq(3.0).all()
    assert replay.actions[2, :7].eq(5.0).all()
    batch = replay.sample(torch.tensor([0, 2]), 500, torch.Generator().manual_seed(0))
    first, third = batch.rewards[:500], batch.rewards[500:]
    assert set(first.tolist()) == {1.0, 3.0} and set(third.tolist()) == {5.0}


def test_episode_successes_reads_finished_episodes_only() -> None:
    info = {
        "final_info": {
            "task_episode": {"success": np.array([1.0, 0.0, 1.0, np.nan])},
            "_task_episode": np.array([True, True, False, True]),
        }
    }
    assert episode_successes(info, 4).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert episode_successes({}, 2).tolist() == [0.0, 0.0]


def _drive(
    steps: int, imitate: SelfImitation, log: list[dict[str, np.ndarray]], start: int = 0
) -> None:
    """MT10 with the experts acting on even tasks and zero actions on odd ones."""
    cfg = MultiTaskEnvConfig(name="MT10", max_episode_steps=HORIZON)
    env, tasks = make_multitask_env(cfg), resolve_tasks(cfg)
    expert = metaworld_expert_policy(tasks, np.arange(10))
    obs, _ = env.reset(seed=5)
    for t in range(start + steps):
        tid = obs["task_id"].copy()
        a = np.clip(expert(obs), -1.0, 1.0)
        a[1::2] = 0.0
        nxt, rew, term, trunc, info = env.step(a)
        done = np.logical_or(term, trunc)
        real = nxt["observation"].astype(np.float32).copy()
        for i in np.flatnonzero(done):
            real[i] = info["final_obs"][i]["observation"]
        moved = {"obs": obs["observation"].astype(np.float32), "action": a, "reward": rew}
        moved |= {"next_obs": real, "terminated": term.astype(np.float32)}
        if t >= start:
            log.append(
                moved | {"task_id": tid, "done": done, "success": episode_successes(info, 10)}
            )
            imitate.record(moved, tid, done, episode_successes(info, 10))
        obs = nxt
    env.close()


@pytest.fixture(scope="module")
def driven() -> tuple[SelfImitation, list[dict[str, np.ndarray]]]:
    imitate = SelfImitation(DemoReplay(_rows(1, 0.0, 39, 4) | {"task_id": np.arange(1)}, 10), 10)
    log: list[dict[str, np.ndarray]] = []
    _drive(2 * HORIZON, imitate, log)
    return imitate, log


def test_successful_episodes_become_demonstrations_row_for_row(
    driven: tuple[SelfImitation, list[dict[str, np.ndarray]]],
) -> None:
    imitate, log = driven
    succeeded = np.stack([s["success"] for s in log]).sum(axis=0)  # per sub-env
    assert succeeded[0::2].sum() >= 3, "the experts should solve some even tasks"
    assert succeeded[1::2].sum() == 0  # zero actions solve nothing
    assert imitate.episodes_added() == succeeded.sum()
    replay = imitate.demos
    for task in range(10):  # sub-env i runs task i, episodes of HORIZON steps
        rows = [s for s in log if s["task_id"][task] == task]
        kept = [
            rows[e * HORIZON : (e + 1) * HORIZON]
            for e in range(len(rows) // HORIZON)
            if rows[(e + 1) * HORIZON - 1]["success"][task]
        ]
        extra = 1 if task == 0 else 0  # the one seed demonstration
        assert replay.size[task] == extra + HORIZON * len(kept)
        for name, key in zip(
            ("obs", "actions", "rewards"), ("obs", "action", "reward"), strict=True
        ):
            want = [s[key][task] for ep in kept for s in ep]
            got = getattr(replay, name)[task, extra : extra + len(want)]
            if want:
                np.testing.assert_array_equal(got.numpy(), np.stack(want).astype(np.float32))


def test_a_resumed_collection_adds_the_same_episodes(
    driven: tuple[SelfImitation, list[dict[str, np.ndarray]]],
) -> None:
    """Stopped mid-episode, pickled, restored onto freshly read demonstrations: the
    demonstrations end up as in the uninterrupted run."""
    whole, _ = driven
    first = SelfImitation(DemoReplay(_rows(1, 0.0, 39, 4) | {"task_id": np.arange(1)}, 10), 10)
    _drive(HORIZON + HORIZON // 2, first, [])
    saved = pickle.loads(pickle.dumps(first.state_dict()))
    second = SelfImitation(DemoReplay(_rows(1, 0.0, 39, 4) | {"task_id": np.arange(1)}, 10), 10)
    second.load_state_dict(saved)
    _drive(HORIZON // 2, second, [], start=HORIZON + HORIZON // 2)
    assert second.episodes_added() == whole.episodes_added()
    np.testing.assert_array_equal(second.demos.size, whole.demos.size)
    for name in ("obs", "actions", "rewards", "next_obs", "dones"):
        n = int(whole.demos.size.max())
        a, b = getattr(second.demos, name)[:, :n], getattr(whole.demos, name)[:, :n]
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_self_imitation_needs_a_use_for_the_episodes() -> None:
    with pytest.raises(ValueError, match="nothing uses them"):
        DemosConfig(dataset="mtrl/mt10-expert-v0", self_imitation=SelfImitationConfig())
    DemosConfig(
        dataset="mtrl/mt10-expert-v0",
        self_imitation=SelfImitationConfig(),
        regulariser=RegulariserConfig(),
    )
