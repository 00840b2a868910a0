"""PopArt critics: statistics against a hand loop, values preserved when they move, the
normalised TD loss and actor loss by hand, and that one critic fits tasks whose returns
differ a thousandfold."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from recipes import assert_short_run_is_seeded

from mtrl.agents.popart import PopArtConfig
from mtrl.agents.replay import Batch
from mtrl.agents.sac import MTSAC, Critic, SACConfig
from mtrl.agents.task_stats import per_task_mean
from mtrl.config import from_dict
from mtrl.curriculum.packnet import _role
from mtrl.errors import ConfigError
from mtrl.nets import NetConfig


def _critic(beta: float = 0.5, tasks: int = 3) -> Critic:
    torch.manual_seed(0)
    return Critic(NetConfig(hidden=[16]), 4, 2, tasks, count=2, popart=PopArtConfig(beta=beta))


def _inputs(n: int = 12, tasks: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    tid = torch.arange(tasks).repeat_interleave(n // tasks)
    return torch.randn(n, 4, generator=g), torch.randn(n, 2, generator=g), tid


def test_statistics_follow_a_hand_loop_and_absent_tasks_keep_theirs() -> None:
    critic = _critic(beta=0.1)
    pop = critic.popart
    assert pop is not None
    mean, second = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    batches = [([3.0, 5.0, -1.0, 7.0], [0, 0, 1, 1]), ([10.0, 20.0], [1, 1])]
    for values, ids in batches:
        pop.update(torch.tensor(values), torch.tensor(ids))
        for t in range(3):
            mine = [v for v, i in zip(values, ids, strict=True) if i == t]
            if mine:
                mean[t] = 0.9 * mean[t] + 0.1 * sum(mine) / len(mine)
                second[t] = 0.9 * second[t] + 0.1 * sum(v * v for v in mine) / len(mine)
    torch.testing.assert_close(pop.mean, torch.tensor(mean))
    torch.testing.assert_close(pop.second, torch.tensor(second))
    assert pop.mean[2] == 0.0 and pop.std[2] == 1.0  # task 2 never seen
    want_std = [max(s - m * m, 1e-8) ** 0.5 for m, s in zip(mean, second, strict=True)]
    torch.testing.assert_close(pop.std, torch.tensor(want_std))


def test_moving_statistics_leave_every_value_and_the_target_critics_unchanged() -> None:
    critic = _critic(beta=0.5)
    target = _critic(beta=0.5)
    assert critic.popart is not None and target.popart is not None
    with torch.no_grad():  # heads away from their initial (1, 0)
        critic.popart.weight.uniform_(0.5, 2.0)
        critic.popart.bias.uniform_(-1.0, 1.0)
        target.popart.weight.uniform_(0.5, 2.0)
    obs, act, tid = _inputs()
    before, before_target = critic(obs, act, tid), target(obs, act, tid)
    for scale in (1000.0, -50.0, 0.01):
        critic.popart.update(scale * torch.randn(12), tid, target.popart)
        for got, want in zip(critic(obs, act, tid), before, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        for got, want in zip(target(obs, act, tid), before_target, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert critic.popart.std.min() > 1.0  # the statistics did move
    torch.testing.assert_close(target.popart.mean, critic.popart.mean)


def test_the_td_loss_is_on_the_normalised_scale() -> None:
    critic = _critic()
    pop = critic.popart
    assert pop is not None
    pop.update(torch.tensor([100.0, 300.0, 0.0, 0.0, 5.0, 6.0]), torch.tensor([0, 0, 1, 1, 2, 2]))
    obs, act, tid = _inputs()
    y = torch.linspace(-200.0, 400.0, 12)
    raw = critic.outputs(obs, act, tid)
    mu, sigma = pop.mean[tid], pop.std[tid]
    by_hand = sum(
        ((pop.weight[tid, i] * r.squeeze(-1) + pop.bias[tid, i]) - (y - mu) / sigma) ** 2
        for i, r in enumerate(raw)
    )
    torch.testing.assert_close(critic.td_errors(obs, act, tid, y), by_hand)
    # values are the normalised outputs brought back to the task's scale
    values = critic(obs, act, tid)
    for i, r in enumerate(raw):
        n = pop.weight[tid, i] * r.squeeze(-1) + pop.bias[tid, i]
        torch.testing.assert_close(values[i], sigma * n + mu)


def test_each_tasks_actor_loss_is_divided_by_its_sigma() -> None:
    torch.manual_seed(0)
    cfg = SACConfig(actor=NetConfig(hidden=[8]), critic=NetConfig(hidden=[8]),
                    popart=PopArtConfig(beta=1.0))  # fmt: skip
    agent = MTSAC(cfg, obs_dim=3, act_dim=1, num_tasks=2)
    assert agent.critic.popart is not None
    tid = torch.tensor([0, 0, 1, 1])
    agent.critic.popart.update(torch.tensor([0.0, 2.0, 0.0, 2000.0]), tid)
    obs, alpha = torch.randn(4, 3), torch.full((4,), 0.2)
    torch.manual_seed(5)
    losses, logp = agent._actor_losses(obs, tid, alpha)
    torch.manual_seed(5)
    action, _ = agent.actor.sample(obs, tid)
    q = torch.minimum(*agent.critic(obs, action, tid))
    plain = per_task_mean(alpha * logp - q, tid, 2)
    torch.testing.assert_close(losses, plain / torch.tensor([1.0, 1000.0]))


STEPS = 150


def _fit_errors(popart: bool) -> list[float]:
    """Each task's mean absolute error, as a share of its returns' spread, of one
    shared critic fitted to one-step returns of two tasks, task 1's 1000x task 0's."""
    torch.manual_seed(0)
    cfg = SACConfig(actor=NetConfig(hidden=[16]), critic=NetConfig(hidden=[32, 32]),
                    critic_lr=3e-3, popart=PopArtConfig(beta=0.01) if popart else None)  # fmt: skip
    agent = MTSAC(cfg, obs_dim=2, act_dim=1, num_tasks=2)
    g = torch.Generator().manual_seed(1)
    tid = torch.arange(2).repeat_interleave(32)
    scale = torch.tensor([1.0, 1000.0])[tid]

    def draw() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        obs = torch.rand(64, 2, generator=g) * 2 - 1
        act = torch.rand(64, 1, generator=g) * 2 - 1
        return obs, act, scale * (obs[:, 0] + act[:, 0] * obs[:, 1])

    for _ in range(STEPS):
        obs, act, reward = draw()
        agent.critic_update(Batch(obs, act, reward, obs, torch.ones(64), tid))
    obs, act, want = draw()
    with torch.no_grad():
        got = agent.critic(obs, act, tid)[0]
    err = ((got - want).abs() / scale).reshape(2, 32).mean(1) / 4.0
    return err.tolist()


def test_one_critic_fits_tasks_a_thousandfold_apart() -> None:
    """Without PopArt the large task's squared errors are a million times the small
    one's and the shared critic serves it alone; with PopArt both are fitted."""
    plain, normalised = _fit_errors(False), _fit_errors(True)
    assert max(normalised) < 0.05, normalised
    assert plain[0] > 4 * normalised[0], (plain, normalised)


def test_popart_settings_are_checked_and_a_short_run_is_seeded(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"popart.beta = 0.0 is out of range"):
        from_dict(SACConfig, {"popart": {"beta": 0.0}})
    with pytest.raises(ConfigError, match=r"sac\.hl_gauss"):
        from_dict(SACConfig, {"popart": {}, "hl_gauss": {}})
    with pytest.raises(ConfigError, match=r"sac\.compile"):
        from_dict(SACConfig, {"popart": {}, "compile": True})
    run = assert_short_run_is_seeded({"popart": {"beta": 0.01}}, tmp_path)
    state = torch.load(run / "checkpoints" / "step_300.pt", weights_only=False)
    assert any(k.endswith("popart.mean") for k in state["agent"])  # checkpoints carry it


def test_packnet_treats_the_heads_rows_as_the_tasks() -> None:
    assert _role("popart.weight", torch.zeros(3, 2)) == "task"


def test_a_critic_reset_keeps_the_statistics_and_redraws_the_heads() -> None:
    torch.manual_seed(0)
    small = NetConfig(hidden=[8])
    agent = MTSAC(SACConfig(actor=small, critic=small, popart=PopArtConfig(beta=0.5)), 3, 1, 2)
    pop, target = agent.critic.popart, agent.critic_target.popart
    assert pop is not None and target is not None
    with torch.no_grad():
        pop.weight.mul_(3.0)
    pop.update(torch.tensor([10.0, 30.0, -500.0, 700.0]), torch.tensor([0, 0, 1, 1]), target)
    mean, second = pop.mean.clone(), pop.second.clone()
    agent.reset_networks(actor=False, critic=True)
    torch.testing.assert_close(pop.mean, mean)
    torch.testing.assert_close(target.second, second)
    torch.testing.assert_close(pop.weight, torch.ones(2, 2))
