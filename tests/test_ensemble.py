"""Critic ensembles (REDQ, RLPD): N Q-networks, the TD target's min over a random
subset of them, the actor's Q their min or mean; two, two, min is SAC's twin critics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from recipes import tiny_sac

from mtrl.agents.sac import MTSAC, Critic, SACConfig, pessimistic
from mtrl.agents.task_stats import per_task_mean
from mtrl.config import from_dict
from mtrl.errors import ConfigError
from mtrl.kinds.continual import ContinualRecipe
from mtrl.kinds.mtsac import MTSACRecipe, train_mtsac
from mtrl.nets import NetConfig


def test_pessimistic_takes_the_min_over_all_or_a_random_subset() -> None:
    a, b, c = torch.tensor([1.0, 5.0]), torch.tensor([3.0, 2.0]), torch.tensor([0.0, 9.0])
    assert torch.equal(pessimistic([a, b, c]), torch.tensor([0.0, 2.0]))
    assert torch.equal(pessimistic([a, b], 2), torch.minimum(a, b))  # no draw for all
    for seed in range(5):  # the subset is torch's global draw, as a slow loop makes it
        torch.manual_seed(seed)
        picks = torch.randperm(3)[:2].tolist()
        want = torch.stack([[a, b, c][i] for i in picks]).min(0).values
        torch.manual_seed(seed)
        assert torch.equal(pessimistic([a, b, c], 2), want)


def test_an_ensemble_keeps_the_twin_critics_names_and_adds_its_own() -> None:
    """Checkpoints of twin-critic runs load as before (q1, q2); N networks are q1..qN."""
    net = NetConfig(hidden=[8])
    twin = Critic(net, 3, 2, num_tasks=2)
    assert {k.split(".")[0] for k in twin.state_dict()} == {"q1", "q2"}
    five = Critic(net, 3, 2, num_tasks=2, count=5)
    assert {k.split(".")[0] for k in five.state_dict()} == {f"q{i}" for i in range(1, 6)}
    values = five(torch.zeros(4, 3), torch.zeros(4, 2), torch.tensor([0, 1, 0, 1]))
    assert len(values) == 5 and all(v.shape == (4,) for v in values)


def test_the_td_loss_sums_every_critics_error_per_task() -> None:
    agent, buf = tiny_sac(critics=4, target_critics=2)
    batch = buf.sample(8)
    target = torch.randn(8)
    got = agent._td_losses(batch, target)
    values = agent.critic(batch.obs, batch.actions, batch.task_ids)
    slow = torch.zeros(8)
    for q in values:  # a slow reference loop
        for i in range(8):
            slow[i] += (q[i] - target[i]) ** 2
    torch.testing.assert_close(got, per_task_mean(slow, batch.task_ids, 2))


@pytest.mark.parametrize("actor_q", ["min", "mean"])
def test_an_ensemble_update_trains_every_critic(actor_q: str) -> None:
    agent, buf = tiny_sac(critics=5, target_critics=2, actor_q=actor_q)
    before = [p.detach().clone() for p in agent.critic.parameters()]
    metrics = agent.update(buf.sample(8))
    assert all(np.isfinite(v) for v in metrics.values())
    moved = [not torch.equal(a, b) for a, b in zip(before, agent.critic.parameters(), strict=True)]
    per_net = len(list(agent.critic.q1.parameters()))
    for i in range(5):  # each network of the ensemble learned
        assert any(moved[i * per_net : (i + 1) * per_net])


def test_ensemble_settings_are_checked_before_any_work() -> None:
    with pytest.raises(ConfigError, match="target_critics <= critics"):
        SACConfig(critics=3, target_critics=4)
    with pytest.raises(ConfigError, match="critics"):
        SACConfig(critics=1)
    with pytest.raises(ConfigError, match=r"leave sac\.critics = 2"):
        from_dict(ContinualRecipe, {"kind": "continual", "sac": {"critics": 10}})


def test_a_short_ensemble_run_with_more_updates_is_seeded(tmp_path: Path) -> None:
    """RLPD's critic side: ten critics, min over two, the actor on their mean, two
    updates per env step; the same seed gives the same numbers."""
    base: dict[str, object] = {
        "kind": "mtsac",
        "total_steps": 400,
        "learning_starts": 200,
        "batch_size": 32,
        "updates_per_step": 2.0,
        "eval_every": 400,
        "eval_episodes": 1,
        "env": {"name": "navigation2d", "num_tasks": 2},
        "sac": {
            "critics": 10,
            "target_critics": 2,
            "actor_q": "mean",
            "actor": {"hidden": [16]},
            "critic": {"hidden": [16], "layer_norm": False},
        },
    }
    recipe = from_dict(MTSACRecipe, base)
    first = train_mtsac(recipe, tmp_path / "a")
    second = train_mtsac(recipe, tmp_path / "b")
    # two per vector step (two envs) from step 200 on, that step included
    assert first["updates"] == 2 * ((400 - 200) // 2 + 1)
    returns = [row["return"] for row in first["per_task"]]
    assert returns == [row["return"] for row in second["per_task"]]
    assert all(np.isfinite(returns))


def test_a_residual_body_is_bros_blocks_by_hand() -> None:
    """arch 'residual': Linear -> LayerNorm -> ReLU, then x + LN(W2 relu(LN(W1 x))) per
    block, then the output layer, checked against the functional form."""
    from torch.nn import functional as F

    from mtrl.nets import MultiTaskNet

    torch.manual_seed(0)
    cfg = NetConfig(arch="residual", hidden=[8], residual_blocks=2, encoder="onehot")
    net = MultiTaskNet(cfg, in_dim=3, out_dim=1, num_tasks=2)
    x, tid = torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1])
    body = net.body
    h = torch.cat([x, F.one_hot(tid, 2).float()], dim=-1)
    h = F.relu(F.layer_norm(body[0](h), (8,), body[1].weight, body[1].bias))
    for block in body[3:5]:
        lin1, ln1, _, lin2, ln2 = block.inner
        inner = F.relu(F.layer_norm(lin1(h), (8,), ln1.weight, ln1.bias))
        h = h + F.layer_norm(lin2(inner), (8,), ln2.weight, ln2.bias)
    torch.testing.assert_close(net(x, tid), body[5](h))
    assert net.last_shared_weight()[0] is body[5].weight
    with pytest.raises(ConfigError, match=r"give hidden = \[8\]"):
        NetConfig(arch="residual", hidden=[8, 8])


def test_an_ensemble_of_residual_critics_updates() -> None:
    torch.manual_seed(0)
    critic = NetConfig(arch="residual", hidden=[16], residual_blocks=1)
    cfg = SACConfig(actor=NetConfig(hidden=[8]), critic=critic, critics=3, actor_q="mean")
    agent = MTSAC(cfg, obs_dim=3, act_dim=2, num_tasks=2)
    _, buf = tiny_sac()
    metrics = agent.update(buf.sample(8))
    assert all(np.isfinite(v) for v in metrics.values())
