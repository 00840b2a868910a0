"""Periodic resets: the chosen networks re-drawn from their initial distribution at
the scheduled env steps, optimizers fresh, replay and temperatures kept."""

from __future__ import annotations

import pytest
import torch

from mtrl.agents.replay import Batch
from mtrl.agents.resets import ResetConfig
from mtrl.agents.sac import MTSAC, SACConfig
from mtrl.config import from_dict
from mtrl.errors import ConfigError
from mtrl.kinds.continual import ContinualRecipe
from mtrl.nets import NetConfig


def _trained_agent() -> MTSAC:
    torch.manual_seed(0)
    cfg = SACConfig(actor=NetConfig(hidden=[8]), critic=NetConfig(hidden=[8]))
    agent = MTSAC(cfg, obs_dim=3, act_dim=2, num_tasks=2)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        o = torch.rand(8, 3, generator=g)
        a = torch.rand(8, 2, generator=g) * 2 - 1
        tid = torch.tensor([0] * 4 + [1] * 4)
        agent.update(Batch(o, a, torch.rand(8, generator=g), o, torch.zeros(8), tid))
    return agent


def _params(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def _equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_reset_is_a_fresh_draw_with_fresh_optimizers_and_the_same_temperatures() -> None:
    agent = _trained_agent()
    log_alpha = agent.log_alpha.detach().clone()
    torch.manual_seed(7)
    agent.reset_networks(actor=True, critic=True)
    torch.manual_seed(7)  # the same draws by hand: a new actor, then new critics
    fresh = MTSAC(agent.config, 3, 2, 2)
    assert _equal(_params(agent.actor), _params(fresh.actor))
    assert _equal(_params(agent.critic), _params(fresh.critic))
    assert _equal(_params(agent.critic_target), _params(agent.critic))
    assert not agent.actor_opt.state and not agent.critic_opt.state
    assert agent.actor_opt.param_groups[0]["params"][0] is next(agent.actor.parameters())
    assert torch.equal(agent.log_alpha.detach(), log_alpha)


def test_resets_come_at_their_steps_and_leave_the_other_network() -> None:
    agent = _trained_agent()
    resets = ResetConfig(every=100, networks="critic").build(agent, learning_starts=50)
    actor, critic = _params(agent.actor), _params(agent.critic)
    resets.before_update(149)
    assert _equal(_params(agent.critic), critic) and resets.log_metrics() == {"resets": 0}
    resets.before_update(150)
    assert not _equal(_params(agent.critic), critic)
    assert _equal(_params(agent.actor), actor)
    critic = _params(agent.critic)
    resets.before_update(151)
    assert _equal(_params(agent.critic), critic)
    resets.before_update(480)  # a long stride: one reset, the next one after it
    assert resets.log_metrics() == {"resets": 2}
    assert resets.checkpoint() == {"resets": {"next": 550, "count": 2}}
    again = ResetConfig(every=100).build(agent, learning_starts=50)
    again.restore(resets.checkpoint())
    assert again.checkpoint() == resets.checkpoint()


def test_reset_settings_are_checked_before_any_work() -> None:
    with pytest.raises(ConfigError, match=r"resets\.every"):
        ResetConfig(every=0)
    with pytest.raises(ConfigError, match=r"remove the \[resets\] table"):
        from_dict(ContinualRecipe, {"kind": "continual", "resets": {"every": 1000}})
