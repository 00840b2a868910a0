"""The frozen clone as a second policy (IBRL): acting and bootstrapping with the action
the critics value higher, checked row by row against the critics themselves; a
trained run loads with its clone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mtrl.agents.replay import Batch
from mtrl.agents.sac import MTSAC, SACConfig, UpdateExtension
from mtrl.demos.proposal import CloneProposal, pick


def test_pick_takes_the_clone_only_where_its_value_is_higher() -> None:
    actor_a = torch.tensor([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]])
    clone_a = torch.tensor([[-0.1, -0.1], [-0.2, -0.2], [-0.3, -0.3]])
    chosen = pick(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.5, 1.0, 2.0]), actor_a, clone_a)
    expected = torch.stack([actor_a[0], clone_a[1], actor_a[2]])  # ties: the actor
    assert torch.equal(chosen, expected)


def _agent_with_a_different_clone() -> tuple[MTSAC, CloneProposal]:
    torch.manual_seed(0)
    agent = MTSAC(SACConfig(), 3, 2, 2)
    proposal = CloneProposal(agent, UpdateExtension())
    proposal.freeze_clone()
    with torch.no_grad():  # the actor moves away from the clone (as RL would)
        for p in agent.actor.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    agent.extension = proposal
    return agent, proposal


def test_the_agent_acts_with_the_action_the_critics_value_higher() -> None:
    agent, proposal = _agent_with_a_different_clone()
    g = torch.Generator().manual_seed(1)
    obs, tids = torch.randn(64, 3, generator=g), torch.randint(0, 2, (64,), generator=g)
    with torch.no_grad():
        acted = agent.act(obs, tids, deterministic=True)
        by_actor, by_clone = (
            torch.tanh(agent.actor(obs, tids)[0]),
            torch.tanh(proposal.clone(obs, tids)[0]),
        )
        taken = 0
        for i in range(64):  # the reference: one row at a time
            o, t = obs[i : i + 1], tids[i : i + 1]
            qa = min(float(q) for q in agent.critic(o, by_actor[i : i + 1], t))
            qc = min(float(q) for q in agent.critic(o, by_clone[i : i + 1], t))
            expected = by_clone[i] if qc > qa else by_actor[i]
            taken += qc > qa
            torch.testing.assert_close(acted[i], expected)
    assert 0 < taken < 64  # both proposals win somewhere with these weights
    assert proposal.clone_share() is None  # evaluation actions are not counted
    agent.act(obs, tids, deterministic=False)
    share = proposal.clone_share()
    assert share is not None and 0.0 < share < 1.0
    assert proposal.clone_share() is None  # read once


def test_the_td_target_bootstraps_from_the_action_chosen_as_when_acting() -> None:
    agent, proposal = _agent_with_a_different_clone()
    g = torch.Generator().manual_seed(2)
    n = 32
    batch = Batch(
        torch.randn(n, 3, generator=g),
        torch.rand(n, 2, generator=g) * 2 - 1,
        torch.randn(n, generator=g),
        torch.randn(n, 3, generator=g),
        (torch.rand(n, generator=g) < 0.2).float(),
        torch.randint(0, 2, (n,), generator=g),
    )
    alpha = agent.log_alpha.detach().exp()[batch.task_ids]
    torch.manual_seed(5)
    _, target = agent._critic_losses(batch, alpha)
    torch.manual_seed(5)  # the actor's sampled next action: the same noise
    with torch.no_grad():
        next_a, logp = agent.actor.sample(batch.next_obs, batch.task_ids)
        q_actor = torch.minimum(*agent.critic_target(batch.next_obs, next_a, batch.task_ids))
        cloned = torch.tanh(proposal.clone(batch.next_obs, batch.task_ids)[0])
        q_clone = torch.minimum(*agent.critic_target(batch.next_obs, cloned, batch.task_ids))
    chosen = [  # the reference: one row at a time, chosen by Q as when acting
        float(qc) if qc > qa else float(qa - a * lp)
        for qa, qc, a, lp in zip(q_actor, q_clone, alpha, logp, strict=True)
    ]
    by_hand = batch.rewards + 0.99 * (1 - batch.dones) * torch.tensor(chosen)
    torch.testing.assert_close(target, by_hand)
    assert 0 < int((q_clone > q_actor).sum()) < n  # both proposals chosen somewhere


def test_the_clone_stays_frozen_through_rl_updates() -> None:
    agent, proposal = _agent_with_a_different_clone()
    before = [p.clone() for p in proposal.clone.parameters()]
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        agent.update(
            Batch(
                torch.randn(8, 3, generator=g),
                torch.rand(8, 2, generator=g) * 2 - 1,
                torch.randn(8, generator=g),
                torch.randn(8, 3, generator=g),
                torch.zeros(8),
                torch.tensor([0, 1] * 4),
            )
        )
    for p, q in zip(proposal.clone.parameters(), before, strict=True):
        assert torch.equal(p, q)


def test_a_run_with_the_proposal_loads_acting_as_it_trained(tmp_path: Path) -> None:
    """`mtrl.load` rebuilds the proposal from the checkpoint: the loaded policy's
    deterministic actions are those of the training agent's final evaluation path."""
    import mtrl
    from mtrl.collect import collect
    from mtrl.config import from_dict
    from mtrl.errors import ConfigError
    from mtrl.kinds.mtsac import MTSACRecipe, train_mtsac

    root = tmp_path / "datasets"
    collect("MT10", "expert", 1, root, max_episode_steps=50)
    demos = {"dataset": "mtrl/mt10-expert-v0", "root": str(root)}
    with pytest.raises(ConfigError, match=r"\[demos.proposal\] needs \[demos.bc\]"):
        from_dict(MTSACRecipe, {"kind": "mtsac", "demos": demos | {"proposal": {}}})
    recipe = from_dict(
        MTSACRecipe,
        {
            "kind": "mtsac",
            "seed": 2,
            "total_steps": 200,
            "learning_starts": 100,
            "batch_size": 30,
            "eval_episodes": 1,
            "buffer_capacity": 2000,
            "env": {"name": "MT10", "max_episode_steps": 50},
            "sac": {"actor": {"hidden": [32]}, "critic": {"hidden": [32]}},
            "demos": demos
            | {"bc": {"steps": 40, "batch_size": 30, "log_every": 20}, "proposal": {}},
        },
    )
    train_mtsac(recipe, tmp_path / "run")
    trained = mtrl.load(tmp_path / "run")
    assert isinstance(trained.model.extension, CloneProposal)
    agent, proposal = trained.model, trained.model.extension
    obs = np.random.default_rng(0).normal(size=(10, 39)).astype(np.float32)
    acted = trained.act(obs, np.arange(10))
    with torch.no_grad():
        o, t = torch.as_tensor(obs), torch.arange(10)
        by_actor = torch.tanh(agent.actor(o, t)[0])
        by_clone = torch.tanh(proposal.clone(o, t)[0])
        q_actor = torch.minimum(*agent.critic(o, by_actor, t))
        q_clone = torch.minimum(*agent.critic(o, by_clone, t))
    # Meta-World's actions are in [-1, 1]: the env action is the chosen one
    np.testing.assert_allclose(acted, pick(q_actor, q_clone, by_actor, by_clone).numpy(), atol=1e-6)
