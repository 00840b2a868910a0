"""PEARL: the product of Gaussians and KL by hand, per-task replay, the context and RL
buffers' roles, the encoder trained through the critic, bad recipes, `mtrl adapt`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from mtrl.cli import main
from mtrl.config import from_dict
from mtrl.errors import ConfigError
from mtrl.kinds.held_out import HeldOutConfig
from mtrl.kinds.pearl import PEARLRecipe, build, train_pearl
from mtrl.meta.pearl import ContextEncoder, TaskReplay, kl_to_standard_normal, product_of_gaussians

SMALL = {
    "horizon": 20,
    "train_tasks": 6,
    "tasks_per_iteration": 3,
    "train_steps": 3,
    "meta_batch": 4,
    "context_batch": 8,
    "batch_size": 16,
    "hidden": [16],
    "encoder_hidden": [16],
}


def test_product_of_gaussians_by_hand() -> None:
    mu = torch.tensor([[[0.0], [4.0], [9.0]]])  # one task, three factors, 1-D
    var = torch.tensor([[[1.0], [4.0], [0.5]]])
    m, v = product_of_gaussians(mu[:, :2], var[:, :2])
    # precisions 1 and 1/4: var = 1 / 1.25 = 0.8, mean = 0.8 * (0 + 4/4) = 0.8
    assert v.item() == pytest.approx(0.8) and m.item() == pytest.approx(0.8)
    m3, v3 = product_of_gaussians(mu, var, mask=torch.tensor([[1.0, 1.0, 0.0]]))
    assert (m3.item(), v3.item()) == pytest.approx((0.8, 0.8))  # the masked factor left out
    m_all, v_all = product_of_gaussians(mu, var)
    assert v_all.item() == pytest.approx(1 / 3.25)
    assert m_all.item() == pytest.approx((1.0 + 18.0) / 3.25)


def test_kl_to_the_prior_by_hand() -> None:
    kl = kl_to_standard_normal(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 1.0]]))
    assert kl.item() == pytest.approx(0.5 * (2.0 + 1.0 - 1.0 - math.log(2.0)))


def test_the_posterior_ignores_the_order_of_the_context() -> None:
    torch.manual_seed(0)
    enc = ContextEncoder(in_dim=4, latent=3, hidden=[8])
    context = torch.randn(2, 7, 4)
    shuffled = context[:, torch.randperm(7)]
    for a, b in zip(enc.posterior(context), enc.posterior(shuffled), strict=True):
        torch.testing.assert_close(a, b)


def test_task_replay_keeps_each_tasks_rows_apart_and_wraps() -> None:
    replay = TaskReplay(tasks=3, capacity=4, width=1)
    replay.add(0, torch.arange(6.0)[:, None])  # 6 rows into 4 slots: 2, 3, 4, 5 kept
    replay.add(2, torch.full((2, 1), -1.0))
    assert replay.size.tolist() == [4, 0, 2]
    torch.manual_seed(0)
    rows = replay.sample(torch.tensor([0, 2]), 50)
    assert set(rows[0, :, 0].tolist()) <= {2.0, 3.0, 4.0, 5.0} and (rows[1] == -1).all()
    with pytest.raises(ValueError, match="no stored transitions"):
        replay.sample(torch.tensor([1]), 1)


def test_an_iteration_refills_the_context_and_trains_the_encoder_through_the_critic() -> None:
    torch.manual_seed(0)
    learner, _ = build(PEARLRecipe(kl_weight=0.0, **SMALL))  # type: ignore[arg-type]
    before = [p.clone() for p in learner.encoder.parameters()]
    tasks = learner.tasks[:3]
    learner.step(tasks)
    # the first step fills every task's buffers with 2 initial episodes (20 steps each)
    # then, for the chosen tasks, the context holds only the new prior episode while
    # the posterior episode joins the RL buffer alone
    ids = [learner.index[t] for t in tasks]
    assert learner.context.size[ids].tolist() == [20, 20, 20]
    assert learner.replay.size[ids].tolist() == [80, 80, 80]
    assert learner.replay.size[3:].tolist() == [40, 40, 40]
    # (kl_weight 0: only the critic's loss reaches the encoder)
    after = learner.encoder.parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_bad_pearl_recipes_name_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=r"latent = 0"):
        from_dict(PEARLRecipe, {"kind": "pearl", "latent": 0})
    with pytest.raises(ConfigError, match=r"tasks_per_iteration = 9"):
        from_dict(PEARLRecipe, {"kind": "pearl", "train_tasks": 8, "tasks_per_iteration": 9})
    bad = tmp_path / "bad.toml"
    bad.write_text('kind = "pearl"\nenv = "MT10"\n')
    assert main(["train", str(bad), "--run-dir", str(tmp_path / "r")]) == 2
    assert "none held out" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    # one buffer per training task: a two-task family cannot give 40 different ones
    bad.write_text('kind = "pearl"\nenv = "halfcheetah-dir"\n')
    assert main(["train", str(bad), "--run-dir", str(tmp_path / "r")]) == 2
    assert "train_tasks = 40, but 'halfcheetah-dir' has 2" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    bad.write_text('kind = "pearl"\nenv = "ML1:reach-v3"\ntrain_tasks = 60\n')  # 50 goals
    assert main(["train", str(bad), "--run-dir", str(tmp_path / "r")]) == 2
    assert "has 50 different training tasks" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_pearl_on_a_direction_family_trains_on_both_directions() -> None:
    small = SMALL | {"train_tasks": 2, "tasks_per_iteration": 2, "meta_batch": 2}
    learner, family = build(PEARLRecipe(env="halfcheetah-dir", **small))  # type: ignore[arg-type]
    assert sorted(learner.tasks, key=str) == sorted(family.distinct_tasks() or [], key=str)
    learner.step(learner.tasks)  # both tasks' buffers filled, updates on both
    assert learner.replay.size.tolist() == [80, 80]
    learner.close()


def test_adapt_compares_the_posterior_with_the_prior(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train_pearl(PEARLRecipe(iterations=1, **SMALL), tmp_path / "run")  # type: ignore[arg-type]
    assert main(["adapt", str(tmp_path / "run"), "--tasks", "3", "--steps", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["x"] == "episodes"
    assert set(doc["curves"]) == {
        "PEARL (posterior of earlier episodes)",
        "prior z (no adaptation)",
    }
    assert [p["steps"] for p in doc["curves"]["prior z (no adaptation)"]] == [0, 1, 2]


def test_a_run_reports_its_held_out_tasks_when_asked(tmp_path: Path) -> None:
    recipe = PEARLRecipe(iterations=1, held_out=HeldOutConfig(tasks=3, steps=2), **SMALL)  # type: ignore[arg-type]
    res = train_pearl(recipe, tmp_path / "run")
    assert [r["task_id"] for r in res["per_task"]] == [0, 1, 2]
    assert {"return", "success"} <= set(res["per_task"][0]) and res["held_out_steps"] == 2
