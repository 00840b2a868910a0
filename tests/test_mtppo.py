"""Multi-task PPO: GAE across episode boundaries, balanced minibatches, a real run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mtrl.cli import main
from mtrl.config import from_dict
from mtrl.envs import get_family
from mtrl.kinds.mtppo import MTPPORecipe, _balanced_minibatches, train_mtppo
from mtrl.returns import gae_continuing


def test_gae_continuing_resets_at_episode_ends_by_hand() -> None:
    r = torch.tensor([[1.0], [2.0], [3.0]])
    v = torch.tensor([[0.5], [1.0], [1.5]])
    d = torch.tensor([[0.0], [1.0], [0.0]])  # the episode ends after step 1
    last = torch.tensor([2.0])
    g, lam = 0.9, 0.5
    d2 = 3.0 + g * 2.0 - 1.5
    d1 = 2.0 - 1.0  # terminal: no bootstrap
    d0 = 1.0 + g * 1.0 - 0.5
    expected = torch.tensor([[d0 + g * lam * d1], [d1], [d2]])
    torch.testing.assert_close(gae_continuing(r, v, d, last, g, lam), expected)


def test_minibatches_hold_every_task_equally_and_sorted() -> None:
    tids = torch.tensor([0, 1, 2] * 8)
    mbs = _balanced_minibatches(tids, 3, 4, torch.Generator().manual_seed(0))
    assert len(mbs) == 4
    for idx in mbs:
        assert tids[idx].tolist() == [0, 0, 1, 1, 2, 2]


def _recipe(**kw: object) -> MTPPORecipe:
    base: dict[str, object] = {
        "kind": "mtppo",
        "total_steps": 1024,
        "eval_every": 1024,
        "eval_episodes": 1,
        "checkpoint_every": 512,
        "env": {"name": "cartpole", "num_tasks": 2, "envs_per_task": 2},
        "ppo": {"n_steps": 64, "epochs": 2, "actor": {"hidden": [16]}, "critic": {"hidden": [16]}},
    }
    return from_dict(MTPPORecipe, base | kw)


def test_short_run_resumes_and_evaluates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    train_mtppo(_recipe(total_steps=512), run)
    res = train_mtppo(_recipe(), run, resume=True)
    assert res["steps"] == 1024 and len(res["per_task"]) == 2
    assert main(["eval", str(run), "--episodes", "1", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["per_task"]) == 2


def test_continuous_actions_and_gradient_surgery_run(tmp_path: Path) -> None:
    recipe = _recipe(
        env={"name": "pendulum", "num_tasks": 2, "envs_per_task": 1},
        ppo={
            "n_steps": 32,
            "epochs": 1,
            "balancing": "pcgrad",
            "actor": {"arch": "multihead", "hidden": [16, 16]},
        },
        total_steps=128,
        eval_every=128,
    )
    assert train_mtppo(recipe, tmp_path / "run")["steps"] == 128


@pytest.mark.slow
def test_mtppo_learns_the_cartpole_family(tmp_path: Path) -> None:
    recipe = _recipe(
        total_steps=50_000,
        eval_every=50_000,
        eval_episodes=5,
        checkpoint_every=50_000,
        env={"name": "cartpole", "num_tasks": 4, "envs_per_task": 4},
        ppo={"n_steps": 128},
    )
    res = train_mtppo(recipe, tmp_path / "run")
    returns = [r["return"] for r in res["per_task"]]
    assert min(returns) > 60.0, returns  # a random policy balances for about 20 steps


@pytest.mark.slow
def test_cartpole_targets_need_the_task_id_negative_transfer_without_it(tmp_path: Path) -> None:
    """Targets on both sides of the track, hidden from the observation: the conditioned
    agent balances at every target, a task-blind one can serve one side only."""

    def final_returns(encoder: str) -> list[float]:
        net = {"hidden": [64, 64], "activation": "tanh", "encoder": encoder}
        recipe = _recipe(
            total_steps=200_000,
            threads=1,
            eval_every=200_000,
            eval_episodes=3,
            checkpoint_every=200_000,
            env={"name": "cartpole-goal", "num_tasks": 4, "envs_per_task": 4},
            ppo={"n_steps": 128, "actor": net, "critic": net},
        )
        return [r["return"] for r in train_mtppo(recipe, tmp_path / encoder)["per_task"]]

    targets = [float(t.as_dict()["target"]) for t in get_family("cartpole-goal").tasks("train")[:4]]
    # The best any task-blind policy can do: balance at one x for every task.
    xs = np.linspace(-2.4, 2.4, 481)
    blind_bound = max(
        500.0 * float(np.mean([max(0.0, 1.0 - abs(x - t) / 2.4) for t in targets])) for x in xs
    )
    conditioned, blind = final_returns("onehot"), final_returns("none")
    assert np.mean(blind) <= blind_bound + 1.0, (blind, blind_bound)
    # the task id lets the agent beat every possible task-blind policy by a clear margin
    assert np.mean(conditioned) > blind_bound + 40.0, (conditioned, blind_bound)
    assert np.mean(conditioned) > np.mean(blind) + 60.0, (conditioned, blind)


def test_same_seed_same_numbers(tmp_path: Path) -> None:
    first = train_mtppo(_recipe(), tmp_path / "a")["per_task"]
    second = train_mtppo(_recipe(), tmp_path / "b")["per_task"]
    assert [r["return"] for r in first] == [r["return"] for r in second]
