"""PackNet's masks and A-GEM's projection: pure functions by hand, and their effect
inside MT-SAC's update (isolated weights act bit-identically after later tasks)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_continual import RECIPE as CONTINUAL_RECIPE
from test_continual import _agent, _fill

from mtrl.agents.replay import TaskReplayBuffer
from mtrl.agents.sac import MTSAC, SACConfig
from mtrl.cli import main
from mtrl.curriculum.methods import ContinualConfig, ContinualMethod
from mtrl.curriculum.packnet import FREE, keep_share, prune_free, view_mask
from mtrl.curriculum.penalties import agem_project
from mtrl.errors import ConfigError
from mtrl.kinds.continual import ContinualRecipe
from mtrl.nets import NetConfig


def test_keep_share_gives_every_task_an_equal_part() -> None:
    shares = [keep_share(t, 4) for t in range(4)]
    assert shares == [0.25, 1 / 3, 0.5, 1.0]
    free = 1.0
    for s in shares:  # each task keeps a quarter of the whole
        assert s * free == pytest.approx(0.25)
        free -= s * free
    with pytest.raises(ValueError):
        keep_share(4, 4)


def test_prune_free_keeps_the_largest_free_entries() -> None:
    w = torch.tensor([[0.1, -0.9, 0.5], [2.0, -0.3, 0.05]])
    owner = torch.full((2, 3), FREE, dtype=torch.int32)
    owner[1, 0] = 0  # the 2.0 belongs to task 0 already
    new = prune_free(w, owner, 0.4, task=1)  # 5 free entries, keep 2: -0.9 and 0.5
    expected = torch.full((2, 3), FREE, dtype=torch.int32)
    expected[1, 0], expected[0, 1], expected[0, 2] = 0, 1, 1
    assert torch.equal(new, expected)
    assert torch.equal(prune_free(w, owner, 0.0, task=1), owner)
    with pytest.raises(ValueError, match="keep"):
        prune_free(w, owner, 1.5, task=1)


def test_view_mask_by_hand() -> None:
    owner = torch.tensor([0, 1, 2, FREE], dtype=torch.int32)
    assert view_mask(owner, 0, training=2).tolist() == [True, False, False, False]
    assert view_mask(owner, 1, training=2).tolist() == [True, True, False, False]
    assert view_mask(owner, 2, training=2).tolist() == [True, True, True, True]
    assert view_mask(owner, 2, training=None).tolist() == [True, True, True, False]


def test_agem_projection_by_hand() -> None:
    r = torch.tensor([1.0, 0.0])
    g = torch.tensor([-1.0, 2.0])  # opposes r: its component along r is removed
    assert torch.allclose(agem_project(g, r), torch.tensor([0.0, 2.0]))
    ok = torch.tensor([1.0, 3.0])  # does not oppose r: unchanged
    assert agem_project(ok, r) is ok
    g2, r2 = torch.tensor([1.0, -3.0]), torch.tensor([1.0, 1.0])
    p = agem_project(g2, r2)  # g - (g.r / r.r) r = (1, -3) - (-1) (1, 1)
    assert torch.allclose(p, torch.tensor([2.0, -2.0]))
    assert float(p @ r2) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        agem_project(torch.zeros(2), torch.zeros(3))


def _train(agent: MTSAC, cl: ContinualMethod, buffer: TaskReplayBuffer, task: int) -> None:
    gen = torch.Generator().manual_seed(task)
    for step in range(20):
        cl.progress(task, step, 20, agent.num_tasks)
        agent.update(buffer.sample(32, gen, filled_only=True), 1)


def test_packnet_isolates_each_tasks_weights() -> None:
    """After task 0 is pruned, retrained and frozen, training task 1 (with Adam's
    momentum and all) leaves task 0's actions bit-identical; task 0 acts with half of
    the trunk's weights, task 1 with all of them."""
    agent = _agent(2)
    cl = ContinualMethod(ContinualConfig(method="packnet", packnet_retrain=0.25), agent, 0)
    agent.extension = cl
    buffer = TaskReplayBuffer(2, 100, 2, 2)
    _fill(buffer, 0, 100, 0)
    _train(agent, cl, buffer, 0)
    packnet = cl.packnets["actor"]
    owner = packnet.owners["trunk.0.weight"]
    assert int((owner == 0).sum()) == owner.numel() // 2  # keep_share(0, 2) = 1/2
    weight = agent.actor.net.trunk[0].weight
    assert bool((weight.detach()[owner == FREE] == 0).all())  # released entries are zero
    cl.end_task(0, buffer)
    obs = torch.randn(8, 2)
    task0 = torch.zeros(8, dtype=torch.long)
    before = agent.act(obs, task0, deterministic=True).clone()
    buffer.reset(np.array([0]))
    _fill(buffer, 1, 100, 1)
    _train(agent, cl, buffer, 1)
    cl.end_task(1, buffer)
    after = agent.act(obs, task0, deterministic=True)
    assert torch.equal(before, after)
    assert int((packnet.owners["trunk.0.weight"] == 1).sum()) == owner.numel() // 2
    mixed = torch.tensor([0, 1] * 4)  # a mixed batch acts per task with that task's view
    out = agent.act(obs, mixed, deterministic=True)
    assert torch.equal(out[mixed == 0], after[mixed == 0])
    state = cl.state_dict()
    other = ContinualMethod(cl.config, agent, seed=3)
    other.load_state_dict(state)
    assert torch.equal(
        other.packnets["actor"].owners["trunk.0.weight"], packnet.owners["trunk.0.weight"]
    )


def test_agem_projects_gradients_that_raise_the_memory_loss() -> None:
    agent = _agent(2)
    cl = ContinualMethod(ContinualConfig(method="agem", memory_batch=16), agent, 0)
    agent.extension = cl
    buffer = TaskReplayBuffer(2, 100, 2, 2)
    _fill(buffer, 0, 100, 0)
    cl.end_task(0, buffer)
    assert len(cl.transitions) == 1 and len(cl.transitions[0].obs) == 100
    params = [p for p in agent.actor.parameters() if p.requires_grad]
    # a gradient exactly opposite the memory's reference: projected to zero
    gen_state = cl.gen.get_state()
    batch = cl._memory_batch()
    alpha = agent.log_alpha.detach().exp()[batch.task_ids]
    torch.manual_seed(1)
    losses, _ = agent._actor_losses(batch.obs, batch.task_ids, alpha)
    reference = torch.autograd.grad(losses.sum(), params, allow_unused=True)
    for p, r in zip(params, reference, strict=True):
        p.grad = None if r is None else -r.clone()
    cl.gen.set_state(gen_state)
    torch.manual_seed(1)
    agent.critic.requires_grad_(False)
    cl.before_actor_step()
    agent.critic.requires_grad_(True)
    flat = torch.cat([p.grad.reshape(-1) for p in params if p.grad is not None])
    assert float(flat.abs().max()) < 1e-5
    # an update on task 1 runs with the projection in place
    _fill(buffer, 1, 100, 1)
    metrics = agent.update(buffer.sample(32, torch.Generator().manual_seed(0), filled_only=True))
    assert all(np.isfinite(v) for v in metrics.values())


def test_packnet_needs_a_prunable_architecture() -> None:
    soft = NetConfig(arch="soft", hidden=[16, 16, 16])
    with pytest.raises(ConfigError, match="packnet"):
        ContinualRecipe(
            continual=ContinualConfig(method="packnet"),
            sac=SACConfig(actor=soft, critic=soft),
        )
    with pytest.raises(ValueError, match="reg_coef"):
        ContinualConfig(method="agem", reg_coef=1.0)


# test_continual's two-goal recipe, with eval every 100 steps
RECIPE = CONTINUAL_RECIPE.replace("eval_every = 200", "eval_every = 100").replace(
    'method = "ewc"', 'method = "packnet"'
)


@pytest.mark.parametrize("method", ["packnet", "agem"])
def test_continual_runs_with_packnet_and_agem(
    method: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PackNet run cannot forget: task 0's evaluations after its training equal the
    one at its end (deterministic policy and start state), so forgetting is exactly 0;
    `mtrl eval` acts with the stored masks and agrees with the run's last evaluation."""
    recipe = tmp_path / "c.toml"
    recipe.write_text(RECIPE.replace('"packnet"', f'"{method}"'))
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--run-dir", str(run)]) == 0
    results = json.loads((run / "summary.json").read_text())["results"]
    cont = results["continual"]
    if method == "packnet":
        assert cont["forgetting_per_task"] == [0.0, 0.0]
        with (run / "metrics.csv").open() as f:
            rows = list(csv.DictReader(f))
        task0 = [float(r["return/0"]) for r in rows if r["return/0"] and int(r["step"]) >= 400]
        assert len(task0) == 5 and len(set(task0)) == 1  # frozen from its end (step 400)
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    final = {r["task_id"]: r["return"] for r in results["per_task"]}
    for row in doc["per_task"]:
        assert row["return"] == pytest.approx(final[row["task_id"]])
