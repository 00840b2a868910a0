"""The cloning term anchored to the frozen clone: the clone is the actor as RL starts
and stays so; the term clones its actions on the update's own states and pulls a
drifted actor back; in a real run the anchor is the cloned actor, across a resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from recipes import tiny_mt10_demos

from mtrl.agents.replay import Batch
from mtrl.agents.sac import MTSAC, SACConfig, UpdateExtension
from mtrl.collect import collect
from mtrl.config import from_dict
from mtrl.demos.anchor import CloneAnchor
from mtrl.demos.bc import bc_loss
from mtrl.demos.regulariser import DemoBCRegulariser
from mtrl.demos.replay import DemoReplay
from mtrl.kinds.mtsac import MTSACRecipe, train_mtsac
from mtrl.runs import RunDir


def _anchored() -> DemoBCRegulariser:
    torch.manual_seed(0)
    agent = MTSAC(SACConfig(), 3, 2, 2)
    rng = np.random.default_rng(0)
    demos = DemoReplay(
        {
            "obs": rng.normal(size=(8, 3)).astype(np.float32),
            "action": rng.uniform(-1, 1, size=(8, 2)).astype(np.float32),
            "reward": np.zeros(8, dtype=np.float32),
            "next_obs": rng.normal(size=(8, 3)).astype(np.float32),
            "terminated": np.zeros(8, dtype=np.float32),
            "task_id": np.repeat(np.arange(2), 4),
        },
        2,
    )
    return DemoBCRegulariser(
        agent,
        UpdateExtension(),
        demos,
        4,
        "mse",
        torch.Generator().manual_seed(1),
        (1.0, 0, 0, 0.0),
        anchor=CloneAnchor(agent.actor),
    )


def _batch(seed: int) -> Batch:
    g = torch.Generator().manual_seed(seed)
    n = 64
    return Batch(
        torch.randn(n, 3, generator=g) + 2.0,  # states away from the demonstrations
        torch.rand(n, 2, generator=g) * 2 - 1,
        torch.zeros(n),
        torch.randn(n, 3, generator=g),
        torch.zeros(n),
        torch.arange(n) % 2,
    )


def _drift(reg: DemoBCRegulariser, batch: Batch) -> float:
    with torch.no_grad():
        own = torch.tanh(reg.agent.actor(batch.obs, batch.task_ids)[0])
        clone = torch.tanh(reg.anchor.clone(batch.obs, batch.task_ids)[0])  # type: ignore[union-attr]
    return float(((own - clone) ** 2).sum(-1).mean())


def test_the_anchor_is_the_actor_at_the_first_update_then_frozen() -> None:
    reg = _anchored()
    assert reg.anchor is not None
    with torch.no_grad():
        for p in reg.agent.actor.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # the actor after behaviour cloning, say
    batch = _batch(2)
    reg.mix(batch, 0, torch.Generator())
    reg.before_update(0)
    assert _drift(reg, batch) == 0.0
    penalty = reg.actor_penalty()
    assert penalty is not None and reg.last_loss == 0.0
    with torch.no_grad():
        for p in reg.agent.actor.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # RL moves the actor
    reg.before_update(1)  # the clone does not follow
    assert _drift(reg, batch) > 0.0


def test_anchored_cloning_uses_the_updates_states_and_pulls_the_actor_back() -> None:
    reg = _anchored()
    assert reg.anchor is not None
    batch = _batch(3)
    reg.mix(batch, 0, torch.Generator())
    reg.before_update(0)
    with torch.no_grad():
        for p in reg.agent.actor.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    with torch.no_grad():  # the reference: the clone's actions on the batch's own states
        target = torch.tanh(reg.anchor.clone(batch.obs, batch.task_ids)[0])
        mean, log_std = reg.agent.actor(batch.obs, batch.task_ids)
        rows = bc_loss("mse", target, mean, log_std)
        own = reg.agent.actor_value(reg.agent.critic(batch.obs, torch.tanh(mean), batch.task_ids))
        want = own.abs().mean() * rows.mean()
    penalty = reg.actor_penalty()
    assert penalty is not None
    torch.testing.assert_close(penalty.detach(), want)
    before = _drift(reg, batch)
    opt = torch.optim.SGD(reg.agent.actor.parameters(), lr=1e-2)
    for _ in range(20):
        opt.zero_grad()
        loss = reg.actor_penalty()
        assert loss is not None
        loss.backward()
        opt.step()
    assert _drift(reg, batch) < 0.5 * before


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    collect("MT10", "expert", 1, root, max_episode_steps=50)
    return root


def _recipe(demos: Path, total_steps: int, learning_starts: int = 100) -> MTSACRecipe:
    tables = {
        "bc": {"steps": 40, "batch_size": 64},
        "replay": {"share": 0.5},
        "regulariser": {"weight": 1.0, "anchor": "clone"},
    }
    top = {"seed": 4, "total_steps": total_steps, "learning_starts": learning_starts}
    top |= {"eval_every": 1000, "log_every": 100, "checkpoint_every": 100}
    return from_dict(MTSACRecipe, tiny_mt10_demos(demos, tables, **top))


def test_in_a_run_the_anchor_is_the_cloned_actor(demos: Path, tmp_path: Path) -> None:
    train_mtsac(_recipe(demos, 100, 1000), tmp_path / "clone")  # learning never starts
    train_mtsac(_recipe(demos, 300), tmp_path / "rl")
    cloned = RunDir.open(tmp_path / "clone").load_checkpoint()["agent"]
    state = RunDir.open(tmp_path / "rl").load_checkpoint()
    anchor = state["clone_anchor"]["clone"]
    actor = {k.removeprefix("actor."): v for k, v in cloned.items() if k.startswith("actor.")}
    assert anchor.keys() == actor.keys()
    assert all(torch.equal(anchor[k], actor[k]) for k in anchor)
    moved = {
        k.removeprefix("actor."): v for k, v in state["agent"].items() if k.startswith("actor.")
    }
    assert any(not torch.equal(anchor[k], moved[k]) for k in anchor)  # RL moved the actor
    rows = RunDir.open(tmp_path / "rl").read_metrics()
    assert any(float(r["rl_bc_loss"]) > 0.0 for r in rows if r.get("rl_bc_loss"))
