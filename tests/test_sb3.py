"""The SB3 adapter, task-conditioned SB3 policies and per-task logging, with real SB3."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO, SAC

from mtrl.agents.sb3 import (
    PerTaskStatsCallback,
    SB3MultiTaskVecEnv,
    TaskConditionedPolicy,
    TaskConditionedSACPolicy,
    TaskHead,
)
from mtrl.cli import main
from mtrl.config import from_dict
from mtrl.envs.vector import MultiTaskEnvConfig, make_multitask_env
from mtrl.errors import ConfigError, TrainingDivergedError
from mtrl.kinds.sb3 import SB3Recipe, train_sb3


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


def _small_sac(env: SB3MultiTaskVecEnv, **policy_kwargs: object) -> SAC:
    model = SAC(
        TaskConditionedSACPolicy,
        env,
        learning_starts=50,
        batch_size=32,
        seed=0,
        policy_kwargs={"net_arch": [16, 16], **policy_kwargs},
    )
    model.learn(120)
    return model


def test_sb3_sac_runs_with_the_task_conditioned_policy() -> None:
    env = _env()
    model = _small_sac(env, features_extractor_kwargs={"encoding": "embedding"})
    assert model.policy.actor.features_extractor.embedding is not None
    env.close()


def _head_grads(head: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
    assert isinstance(head, TaskHead)
    (g,) = torch.autograd.grad(loss, [head.layer.weight], retain_graph=True)
    return g.abs().sum(dim=(1, 2))  # per task


def test_ppo_per_task_heads_train_only_their_own_task_and_survive_save_load(
    tmp_path: Path,
) -> None:
    env = _env()
    model = PPO(
        TaskConditionedPolicy,
        env,
        n_steps=32,
        batch_size=64,
        seed=0,
        policy_kwargs={
            "net_arch": [16],
            "per_task_heads": True,
            "features_extractor_kwargs": {"encoding": "none"},  # task-blind trunk
        },
    )
    policy = model.policy
    obs = {
        "observation": torch.rand(3, 2),
        "task_id": torch.tensor([0, 0, 0]),
    }
    _, values, _ = policy(obs)
    grads = _head_grads(policy.value_net, values.sum())
    assert grads[0] > 0 and grads[1] == 0  # task 1's value head is untouched by task 0
    mean = policy.get_distribution(obs).distribution.mean  # type: ignore[union-attr]
    grads = _head_grads(policy.action_net, mean.sum())
    assert grads[0] > 0 and grads[1] == 0
    model.learn(64)
    model.save(tmp_path / "ppo")
    loaded = PPO.load(tmp_path / "ppo", env=env)
    assert loaded.policy.per_task_heads  # type: ignore[attr-defined]
    np_obs = {
        "observation": np.random.rand(4, 2).astype(np.float32),
        "task_id": np.array([0, 1, 0, 1]),
    }
    a1, _ = model.predict(np_obs, deterministic=True)
    a2, _ = loaded.predict(np_obs, deterministic=True)
    np.testing.assert_allclose(a1, a2, rtol=1e-6)
    env.close()


def test_sac_per_task_heads_learn_and_keep_tasks_apart(tmp_path: Path) -> None:
    env = _env()
    model = _small_sac(env, per_task_heads=True)
    actor, critic = model.policy.actor, model.policy.critic
    assert isinstance(actor.mu, TaskHead) and isinstance(actor.log_std, TaskHead)
    assert all(isinstance(q.head, TaskHead) for q in critic.q_networks)  # type: ignore[union-attr]
    obs = {"observation": torch.rand(2, 2), "task_id": torch.tensor([1, 1])}
    q1 = critic(obs, torch.zeros(2, 2))[0]
    grads = _head_grads(critic.q_networks[0].head, q1.sum())  # type: ignore[union-attr]
    assert grads[1] > 0 and grads[0] == 0
    model.save(tmp_path / "sac")
    loaded = SAC.load(tmp_path / "sac", env=env)
    np_obs = {
        "observation": np.random.rand(4, 2).astype(np.float32),
        "task_id": np.array([0, 1, 0, 1]),
    }
    np.testing.assert_allclose(
        model.predict(np_obs, deterministic=True)[0],
        loaded.predict(np_obs, deterministic=True)[0],
        rtol=1e-6,
    )
    env.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    "policy_kwargs",
    [
        {},
        {"per_task_heads": True, "features_extractor_kwargs": {"encoding": "none"}},
    ],
    ids=["task-input", "per-task-heads"],
)
def test_sb3_ppo_with_task_conditioned_policy_learns_every_task(
    policy_kwargs: dict[str, object],
) -> None:
    env = _env(num_tasks=4, per_task=4)
    callback = PerTaskStatsCallback()
    model = PPO(
        TaskConditionedPolicy,
        env,
        seed=0,
        n_steps=256,
        batch_size=256,
        learning_rate=1e-3,
        policy_kwargs={"net_arch": [64, 64], "log_std_init": -1.5, **policy_kwargs},
        device="cpu",
    )
    model.learn(60_000, callback=callback)
    first, last = callback.history[0], callback.history[-1]
    for tid in range(4):
        assert last[f"return_{tid}"] > -25.0, last  # random-ish start is about -100
        assert last[f"return_{tid}"] > first[f"return_{tid}"] + 40.0
    env.close()


def _sb3_recipe(**kw: object) -> SB3Recipe:
    base: dict[str, object] = {
        "kind": "sb3",
        "total_steps": 512,  # 4 sub-envs: the first episodes (100 steps) end at 400
        "net_arch": [16],
        "log_every": 128,
        "checkpoint_every": 256,
        "eval_episodes": 1,
        "env": {"name": "navigation2d", "num_tasks": 2, "envs_per_task": 2},
        "algo_kwargs": {"n_steps": 32, "batch_size": 64},
    }
    return from_dict(SB3Recipe, base | kw)


def test_sb3_recipe_trains_resumes_and_feeds_eval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where SB3 puts an unset logger's folder
    run = tmp_path / "run"
    train_sb3(_sb3_recipe(), run)
    res = train_sb3(_sb3_recipe(total_steps=640), run, resume=True)
    assert res["steps"] == 640 and len(res["per_task"]) == 2  # continued from 512
    metrics = (run / "metrics.csv").read_text()
    assert "train_return/0" in metrics and "eval_return" in metrics
    assert main(["eval", str(run), "--episodes", "1", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["per_task"]) == 2
    sac = _sb3_recipe(algo="sac", total_steps=120, algo_kwargs={"learning_starts": 40})
    assert train_sb3(sac, tmp_path / "sac")["steps"] == 120
    assert not list(temp.iterdir())  # no empty SB3-<time> folder per run


def test_bad_sb3_recipes_fail_before_the_run_dir_exists(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"refused.*n_stepz"):
        train_sb3(_sb3_recipe(algo_kwargs={"n_stepz": 8}), tmp_path / "a")
    assert not (tmp_path / "a").exists()
    with pytest.raises(ConfigError, match="top-level keys"):
        _sb3_recipe(policy_kwargs={"net_arch": [8]})
    with pytest.raises(ConfigError, match=r"algo_kwargs\.seed"):
        _sb3_recipe(algo_kwargs={"seed": 3})
    with pytest.raises(ConfigError, match="expected a table"):
        _sb3_recipe(algo_kwargs=3)


@pytest.mark.parametrize("validate", [True, False])  # torch.compile turns validation off
def test_a_diverging_sb3_run_says_what_to_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, validate: bool
) -> None:
    monkeypatch.setattr(torch.distributions.Distribution, "_validate_args", validate)
    recipe = _sb3_recipe(policy_kwargs={"log_std_init": float("nan")})  # NaN from the start
    with pytest.raises(TrainingDivergedError, match="learning_rate"):
        train_sb3(recipe, tmp_path / "run")
    assert (tmp_path / "run" / "config.toml").is_file()  # the run dir is kept
