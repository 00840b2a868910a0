"""The critic warm start continued online (``critic_warm_start.online_steps``): while
held, an update moves the critics exactly as a full update would and nothing else; in
a real run the actor that acts and is evaluated stays the clone until the hold ends."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from recipes import tiny_mt10_demos

import mtrl
from mtrl.agents.replay import Batch
from mtrl.agents.sac import MTSAC, SACConfig, UpdateExtension
from mtrl.collect import collect
from mtrl.config import from_dict
from mtrl.demos.critics_first import CriticsFirst
from mtrl.kinds.mtsac import MTSACRecipe, train_mtsac
from mtrl.runs import RunDir


def _batch(n: int = 32) -> Batch:
    g = torch.Generator().manual_seed(3)
    return Batch(
        torch.randn(n, 3, generator=g),
        torch.rand(n, 2, generator=g) * 2 - 1,
        torch.randn(n, generator=g),
        torch.randn(n, 3, generator=g),
        torch.zeros(n),
        torch.randint(0, 2, (n,), generator=g),
    )


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_held_update_moves_the_critics_as_a_full_one_and_nothing_else() -> None:
    torch.manual_seed(0)
    agent = MTSAC(SACConfig(), 3, 2, 2)
    full = copy.deepcopy(agent)
    hold = CriticsFirst(UpdateExtension(), learning_starts=100, online_steps=50)
    agent.extension = hold
    actor, alpha = _params(agent.actor), agent.log_alpha.detach().clone()
    hold.before_update(149)
    torch.manual_seed(1)
    held_metrics = agent.update(_batch())
    torch.manual_seed(1)
    full_metrics = full.update(_batch())
    assert _same(_params(agent.critic), _params(full.critic))
    assert _same(_params(agent.critic_target), _params(full.critic_target))
    assert held_metrics["critic_loss"] == full_metrics["critic_loss"]
    assert _same(_params(agent.actor), actor) and torch.equal(agent.log_alpha, alpha)
    assert not _same(_params(full.actor), actor) and not torch.equal(full.log_alpha, alpha)
    assert "actor_loss" not in held_metrics and hold.update_metrics() == {"actor_held": 1.0}
    hold.before_update(150)  # learning_starts + online_steps: the actor follows
    agent.update(_batch())
    assert not _same(_params(agent.actor), actor)
    assert hold.update_metrics() == {"actor_held": 0.0}


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    collect("MT10", "expert", 1, root, max_episode_steps=50)
    return root


def test_the_clone_acts_and_is_evaluated_unchanged_until_the_hold_ends(
    demos: Path, tmp_path: Path
) -> None:
    tables = {
        "bc": {"steps": 60, "batch_size": 64},
        "critic_warm_start": {"steps": 20, "online_steps": 100},
        "replay": {"share": 0.5},
    }
    raw = tiny_mt10_demos(demos, tables, seed=2, total_steps=300, eval_every=150, log_every=50)
    recipe = from_dict(MTSACRecipe, raw)
    train_mtsac(recipe, tmp_path / "run")
    rows = RunDir.open(tmp_path / "run").read_metrics()
    evals = {int(r["step"]): float(r["eval_return"]) for r in rows if r.get("eval_return")}
    assert sorted(evals) == [0, 150, 300]
    assert evals[150] == evals[0]  # the clone, held through 50 critic-only updates
    assert evals[300] != evals[0]  # the actor updated from env step 200 on
    held = {int(r["step"]): float(r["actor_held"]) for r in rows if r.get("actor_held")}
    assert held == {100: 1.0, 150: 1.0, 200: 0.0, 250: 0.0, 300: 0.0}
    actor_rows = [int(r["step"]) for r in rows if r.get("actor_loss")]
    assert min(actor_rows) == 200
    trained = mtrl.load(tmp_path / "run")  # a training-only term: the loaded agent acts alone
    assert not isinstance(trained.model.extension, CriticsFirst)
    obs = np.random.default_rng(0).normal(size=(10, 39)).astype(np.float32)
    with torch.no_grad():
        own = torch.tanh(trained.model.actor(torch.as_tensor(obs), torch.arange(10))[0])
    np.testing.assert_allclose(trained.act(obs, np.arange(10)), own.numpy(), atol=1e-6)
