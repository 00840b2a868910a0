"""Multi-task SAC: replay balance, a short run with resume, eval/plot, negative transfer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from recipes import tiny_sac

from mtrl.agents.replay import TaskReplayBuffer
from mtrl.agents.sac import MTSAC, SACConfig, squashed_sample
from mtrl.agents.task_stats import per_task_mean
from mtrl.cli import main
from mtrl.config import from_dict
from mtrl.errors import ConfigError
from mtrl.kinds.mtsac import MTSACRecipe, train_mtsac
from mtrl.nets import NetConfig


def _recipe(**kw: object) -> MTSACRecipe:
    base: dict[str, object] = {
        "kind": "mtsac",
        "total_steps": 600,
        "learning_starts": 200,
        "batch_size": 32,
        "eval_every": 400,
        "eval_episodes": 1,
        "log_every": 200,
        "checkpoint_every": 400,
        "env": {"name": "navigation2d", "num_tasks": 2, "envs_per_task": 2},
        "sac": {"actor": {"hidden": [16, 16]}, "critic": {"hidden": [16, 16]}},
    }
    return from_dict(MTSACRecipe, base | kw)


def test_replay_sampling_is_balanced_and_task_sorted() -> None:
    buf = TaskReplayBuffer(3, capacity=5, obs_dim=2, act_dim=1)
    for step in range(8):  # task 2 gets 2 rows per step, overflowing its ring
        tids = np.array([0, 1, 2, 2])
        obs = np.stack([tids, np.full(4, step)], axis=1).astype(np.float32)
        buf.add(obs, np.zeros((4, 1)), tids.astype(np.float32), obs, np.zeros(4), tids)
    assert buf.size.tolist() == [5, 5, 5]
    batch = buf.sample(12, torch.Generator().manual_seed(0))
    assert batch.task_ids.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    torch.testing.assert_close(batch.obs[:, 0], batch.task_ids.float())  # rows match their task
    assert float(batch.obs[:, 1].min()) >= 3  # the oldest transitions were overwritten
    with pytest.raises(ValueError, match="multiple of the number of tasks"):
        buf.sample(10)


def test_a_checkpointed_buffer_holds_its_filled_rows_and_restores_exactly(
    tmp_path: Path,
) -> None:
    """The saved state covers the rows written (not the empty capacity, which made
    early checkpoints of MT10's 1M-transition buffer ~300 MB); restored, the buffer
    samples the same batches, and a full ring saves and restores whole."""
    buf = TaskReplayBuffer(2, capacity=1000, obs_dim=3, act_dim=2)
    rng = np.random.default_rng(0)
    for _ in range(7):
        buf.add(
            rng.normal(size=(3, 3)),
            rng.normal(size=(3, 2)),
            rng.normal(size=3),
            rng.normal(size=(3, 3)),
            np.zeros(3),
            np.array([0, 1, 1]),
        )
    torch.save(buf.state(), tmp_path / "b.pt")
    assert (tmp_path / "b.pt").stat().st_size < 10_000  # 14 rows, not 2 x 1000
    back = TaskReplayBuffer(2, capacity=1000, obs_dim=3, act_dim=2)
    back.load_state(torch.load(tmp_path / "b.pt", weights_only=False))
    for a, b in zip(
        buf.sample(8, torch.Generator().manual_seed(1)),
        back.sample(8, torch.Generator().manual_seed(1)),
        strict=True,
    ):
        assert torch.equal(a, b)
    small = TaskReplayBuffer(1, capacity=4, obs_dim=1, act_dim=1)
    for v in range(6):  # wraps around: every row is live
        small.add(
            np.full((1, 1), v),
            np.zeros((1, 1)),
            np.zeros(1),
            np.zeros((1, 1)),
            np.zeros(1),
            np.array([0]),
        )
    again = TaskReplayBuffer(1, capacity=4, obs_dim=1, act_dim=1)
    again.load_state(small.state())
    assert again.obs[0, :, 0].tolist() == [4.0, 5.0, 2.0, 3.0] and again.pos.tolist() == [2]


def test_squashed_log_prob_matches_change_of_variables() -> None:
    torch.manual_seed(0)
    mean, log_std = (
        torch.randn(5, 2, dtype=torch.float64),
        torch.randn(5, 2, dtype=torch.float64) * 0.3,
    )
    a, logp = squashed_sample(mean, log_std)
    pre = torch.atanh(a)
    base = torch.distributions.Normal(mean, log_std.exp()).log_prob(pre).sum(-1)
    expected = base - torch.log(1 - a**2).sum(-1)
    torch.testing.assert_close(logp, expected, rtol=1e-6, atol=1e-6)


def test_per_task_mean_groups_by_task() -> None:
    v = torch.tensor([1.0, 3.0, 10.0, 20.0])
    torch.testing.assert_close(
        per_task_mean(v, torch.tensor([0, 0, 2, 2]), 3), torch.tensor([2.0, 0.0, 15.0])
    )


@pytest.mark.parametrize(
    "balancing", ["none", "pcgrad", "cagrad", "uncertainty", "gradnorm", "famo"]
)
def test_an_update_changes_networks_and_temperatures(balancing: str) -> None:
    torch.manual_seed(0)
    critic_arch = "multihead" if balancing == "gradnorm" else "soft"  # soft shares no layer
    cfg = SACConfig(
        balancing=balancing,  # type: ignore[arg-type]
        actor=NetConfig(hidden=[8]),
        critic=NetConfig(arch=critic_arch, hidden=[8, 8]),  # type: ignore[arg-type]
    )
    agent = MTSAC(cfg, obs_dim=3, act_dim=2, num_tasks=2)
    buf = TaskReplayBuffer(2, 10, 3, 2)
    for _ in range(3):
        buf.add(
            np.random.rand(2, 3),
            np.random.rand(2, 2),
            np.random.rand(2),
            np.random.rand(2, 3),
            np.zeros(2),
            np.array([0, 1]),
        )
    before = [p.detach().clone() for p in agent.parameters()]
    bal_before = [p.detach().clone() for p in agent.critic_balancer.parameters()]
    metrics = agent.update(buf.sample(8))
    assert all(np.isfinite(v) for v in metrics.values())
    changed = [not torch.equal(a, b) for a, b in zip(before, agent.parameters(), strict=True)]
    assert all(changed[: len(list(agent.actor.parameters()))])
    assert not torch.equal(agent.log_alpha.detach(), torch.zeros(2))
    weights = agent.critic_balancer.task_weights()
    assert float(weights.sum()) == pytest.approx(2.0)
    if balancing in ("uncertainty", "gradnorm", "famo"):  # the critics' weighting learned
        assert all(
            not torch.equal(a, b)
            for a, b in zip(bal_before, agent.critic_balancer.parameters(), strict=True)
        )
        assert agent.optimizer_state()["critic_balancer"]["state"]


def test_a_fixed_temperature_stays_and_the_update_is_otherwise_the_same() -> None:
    """``tune_alpha = false`` (SB3's fixed ent_coef): the temperatures stay at
    init_alpha; actor and critics take the same first step as with tuning."""
    agents, metrics = [], []
    for tune in (True, False):
        agent, buf = tiny_sac(init_alpha=0.2, tune_alpha=tune)
        torch.manual_seed(1)
        metrics.append(agent.update(buf.sample(8)))
        agents.append(agent)
    tuned, fixed = agents
    for a, b in zip(tuned.actor.parameters(), fixed.actor.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(tuned.critic.parameters(), fixed.critic.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not torch.allclose(tuned.log_alpha, torch.full((2,), math.log(0.2)))
    assert torch.equal(fixed.log_alpha.detach(), torch.full((2,), math.log(0.2)))
    assert metrics[1]["alpha"] == pytest.approx(0.2)


def test_reward_scale_multiplies_the_rewards_in_the_td_target() -> None:
    """``sac.reward_scale`` (rlkit's): the soft TD target of the same agent and batch
    grows by ``(scale - 1) x reward``, the bootstrapped part unchanged."""
    from mtrl.agents.replay import Batch

    g = torch.Generator().manual_seed(0)
    batch = Batch(
        torch.rand(6, 3, generator=g),
        torch.rand(6, 2, generator=g) * 2 - 1,
        torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0]),
        torch.rand(6, 3, generator=g),
        torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 1.0]),
        torch.tensor([0, 0, 0, 1, 1, 1]),
    )
    targets = []
    for scale in (1.0, 10.0):
        torch.manual_seed(0)
        agent = MTSAC(SACConfig(reward_scale=scale), obs_dim=3, act_dim=2, num_tasks=2)
        torch.manual_seed(1)  # the same next-action sample in both targets
        targets.append(agent._critic_losses(batch, agent.log_alpha.exp()[batch.task_ids])[1])
    torch.testing.assert_close(targets[1] - targets[0], 9.0 * batch.rewards)
    with pytest.raises(ValueError, match="reward_scale"):
        SACConfig(reward_scale=0.0)


def test_gradnorm_needs_a_shared_layer() -> None:
    with pytest.raises(ConfigError, match="shared by all tasks"):
        MTSAC(SACConfig(balancing="gradnorm", critic=NetConfig(arch="soft")), 3, 2, 2)


def test_short_run_resumes_and_feeds_eval_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    half = _recipe(total_steps=400)
    train_mtsac(half, run)
    res = train_mtsac(_recipe(), run, resume=True)  # continues from step 400
    assert res["steps"] == 600
    assert len(res["per_task"]) == 2
    assert main(["eval", str(run), "--episodes", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["per_task"]) == 2 and "iqm" in doc["aggregate"]["return"]
    assert main(["plot", str(run)]) == 0
    for name in ("curves.png", "per_task.png", "per_task_curves.png"):
        assert (run / "plots" / name).is_file(), name


def test_bad_mtsac_recipes_fail_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="multiple of the 2 tasks"):
        train_mtsac(_recipe(batch_size=33), tmp_path / "a")
    with pytest.raises(ConfigError, match="continuous"):
        train_mtsac(_recipe(env={"name": "cartpole", "num_tasks": 2}), tmp_path / "b")
    with pytest.raises(ConfigError, match="task_encoding"):
        _recipe(env={"name": "navigation2d", "task_encoding": "onehot"})


def _final_returns(
    tmp_path: Path, name: str, sac: dict[str, object], total_steps: int = 30_000
) -> list[float]:
    recipe = _recipe(
        total_steps=total_steps,
        threads=1,  # pytest -n 2 runs two of these at once on two cores
        learning_starts=2_000,
        batch_size=256,
        eval_every=total_steps,
        eval_episodes=2,
        log_every=5_000,
        checkpoint_every=total_steps,
        env={"name": "navigation2d", "num_tasks": 4, "envs_per_task": 1},
        sac=sac,
    )
    return [r["return"] for r in train_mtsac(recipe, tmp_path / name)["per_task"]]


def _nets(encoder: str) -> dict[str, object]:
    net = {"hidden": [64, 64], "encoder": encoder}
    return {"actor": net, "critic": net}


@pytest.mark.slow
def test_task_identity_is_needed_negative_transfer_without_it(tmp_path: Path) -> None:
    # Navigation2D hides the goal: without the task id one policy must serve 4 goals.
    conditioned = _final_returns(tmp_path, "onehot", _nets("onehot"))
    blind = _final_returns(tmp_path, "none", _nets("none"))
    assert min(conditioned) > -12.0, conditioned  # every goal reached (optimum is about -2)
    assert np.mean(blind) < np.mean(conditioned) - 10.0, (blind, conditioned)


@pytest.mark.slow
def test_soft_modularization_with_famo_reaches_every_goal(tmp_path: Path) -> None:
    net = {"arch": "softmod", "hidden": [64, 64, 64]}
    sac = {"actor": net, "critic": net, "balancing": "famo"}
    returns = _final_returns(tmp_path, "softmod", sac, total_steps=20_000)
    assert min(returns) > -12.0, returns  # untrained about -100, optimum about -2


def test_bench_sac_reports_both_implementations(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "sac", "--steps", "1", "--repeats", "1", "--batch", "20", "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["updates_per_s"]) == {"mtrl MT-SAC", "SB3 SAC"} and doc["ratio"] > 0
    assert main([*args, "--critics", "10"]) == 0  # what an ensemble costs, in the same run
    doc = json.loads(capsys.readouterr().out)
    assert "mtrl MT-SAC, 10 critics" in doc["updates_per_s"] and doc["ratio_critics"]["10"] > 0
    options = ["--critic-option", "residual", "--critic-option", "hl_gauss", "--hidden", "32,32,32"]
    assert main([*args, *options]) == 0  # each critic option at the same sizes
    doc = json.loads(capsys.readouterr().out)
    assert doc["hidden"] == [32, 32, 32]
    names = {"mtrl MT-SAC", "mtrl MT-SAC, residual critics", "mtrl MT-SAC, HL-Gauss critics"}
    assert set(doc["ratios"]) == names and all(r > 0 for r in doc["ratios"].values())
    # parameters: one-hot inputs 39 + 10 (+ 4 actions), three 32-unit layers, per net
    actor = (49 * 32 + 32) + 2 * (32 * 32 + 32) + (32 * 8 + 8)
    critic = (53 * 32 + 32) + 2 * (32 * 32 + 32) + (32 + 1)
    assert doc["parameters"]["mtrl MT-SAC"] == actor + 2 * critic
    assert doc["parameters"]["mtrl MT-SAC, HL-Gauss critics"] == actor + 2 * (
        critic + 32 * 100 + 100
    )
    with pytest.raises(SystemExit):
        main([*args, "--hidden", "32,x"])


def test_compiled_update_matches_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config, "fallback_random", True)  # eager RNG stream
    net = NetConfig(hidden=[16, 16])
    agents = []
    for compile_ in (False, True):
        torch.manual_seed(0)
        agents.append(MTSAC(SACConfig(actor=net, critic=net, compile=compile_), 3, 2, 2))
    buf = TaskReplayBuffer(2, 16, 3, 2)
    rng = np.random.default_rng(0)
    buf.add(
        rng.random((16, 3)),
        rng.uniform(-1, 1, (16, 2)),
        rng.random(16),
        rng.random((16, 3)),
        np.zeros(16),
        np.repeat([0, 1], 8),
    )
    batch = buf.sample(8, torch.Generator().manual_seed(0))
    for agent in agents:
        torch.manual_seed(1)
        agent.update(batch)
    for a, b in zip(agents[0].parameters(), agents[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_compile_refuses_balancing_that_needs_repeated_backward() -> None:
    with pytest.raises(ConfigError, match="compile = false"):
        SACConfig(compile=True, balancing="pcgrad")
    SACConfig(compile=True, balancing="famo")  # a single backward: fine


def test_same_seed_same_numbers(tmp_path: Path) -> None:
    first = train_mtsac(_recipe(), tmp_path / "a")["per_task"]
    second = train_mtsac(_recipe(), tmp_path / "b")["per_task"]
    assert [r["return"] for r in first] == [r["return"] for r in second]
