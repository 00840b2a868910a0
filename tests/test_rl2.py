"""RL²: the recurrent state across a trial's episodes, the training unroll against a
slow step-by-step reference, the trial's inputs, bad recipes, `mtrl adapt`, learning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mtrl.cli import main
from mtrl.config import from_dict
from mtrl.errors import ConfigError
from mtrl.kinds.rl2 import RL2Recipe, TrialPPOConfig, Trials, build, train_rl2
from mtrl.meta.recurrent import RecurrentGaussianPolicy, StepIndex, trial_inputs
from mtrl.meta.rl_sampler import Episodes
from mtrl.returns import gae
from mtrl.runs import RunDir


def _learner(**kw: object) -> tuple:
    recipe = RL2Recipe(horizon=15, gru=8, meta_batch=3, trials_per_task=2, **kw)  # type: ignore[arg-type]
    torch.manual_seed(0)
    learner, family = build(recipe, 3, 2)
    return learner, family.sample_tasks(3, np.random.default_rng(0)), recipe


def test_memory_carries_across_a_trials_episodes_and_resets_between_trials() -> None:
    learner, tasks, _ = _learner()
    # Navigation2D starts every episode at the origin, so an episode's first input is
    # the same each time (obs 0, no previous action or reward, the start flag): only
    # the recurrent state can make the first actions of two episodes differ
    first = learner.trials(tasks, 2, mean=True)
    again = learner.trials(tasks, 2, mean=True)
    reset = learner.trials(tasks, 2, mean=True, keep_memory=False)
    a0, a1 = first[0].actions[0], first[1].actions[0]
    assert torch.equal(again[0].actions[0], a0)  # a new trial starts from zeros
    assert not torch.allclose(a1, a0, atol=1e-4)  # the state carried into episode 2
    assert torch.equal(reset[1].actions[0], a0)  # memory reset: episode 2 starts afresh
    assert torch.equal(again[1].actions, first[1].actions)  # deterministic given the trial


def _reference_unroll(
    policy: RecurrentGaussianPolicy, x: torch.Tensor, masks: torch.Tensor
) -> torch.Tensor:
    """Means step by step, one column at a time, the state held where ``masks`` is 0:
    the slow loop the compacted unroll must equal."""
    means = torch.zeros(*x.shape[:2], policy.act_dim)
    for b in range(x.shape[1]):
        h = policy.initial_state(1)
        for t in range(x.shape[0]):
            if masks[t, b] == 0:
                continue
            dist, h = policy.step(x[t, b : b + 1], h)
            means[t, b] = dist.mean[0]
    return means


def test_the_training_unroll_equals_stepping_with_the_state_held_on_gaps() -> None:
    torch.manual_seed(3)
    policy = RecurrentGaussianPolicy(obs_dim=3, act_dim=2, hidden=5)
    lengths = [[4, 2], [1, 4], [3, 3]]  # per column, steps that happened in episodes 1, 2
    masks = torch.zeros(8, 3)
    for b, (e1, e2) in enumerate(lengths):
        masks[:e1, b] = 1
        masks[4 : 4 + e2, b] = 1
    x = torch.randn(8, 3, 3 + 2 + 2)
    with torch.no_grad():
        dist = policy.unroll(x, masks)
        ref_mean = _reference_unroll(policy, x, masks)
    on = masks > 0
    torch.testing.assert_close(dist.mean[on], ref_mean[on], rtol=1e-5, atol=1e-6)


def test_step_index_compacts_and_gae_runs_across_a_trials_episodes() -> None:
    masks = torch.tensor([[1, 1], [0, 1], [1, 1], [1, 0]], dtype=torch.float32)
    index = StepIndex(masks)
    rewards = torch.tensor([[1.0, 2.0], [9.0, 3.0], [4.0, 5.0], [6.0, 9.0]])
    compact = index.compact(rewards)
    assert compact[:, 0].tolist() == [1.0, 4.0, 6.0]  # the gap left out
    assert compact[:, 1].tolist() == [2.0, 3.0, 5.0]
    assert torch.equal(index.expand(compact, rewards.shape), rewards * masks)
    # GAE over the compacted trial bootstraps from episode 2's first step into episode 1
    values = torch.tensor([[0.5, 0.0], [0.0, 0.0], [2.0, 0.0], [1.0, 0.0]])
    adv = index.expand(
        gae(compact, index.compact(values), index.compact(masks), 0.9, 1.0), masks.shape
    )
    returns_col0 = [1 + 0.9 * 4 + 0.81 * 6, 4 + 0.9 * 6, 6]
    assert (adv[[0, 2, 3], 0] + values[[0, 2, 3], 0]).tolist() == pytest.approx(returns_col0)


def test_trial_inputs_hold_the_previous_action_reward_and_the_start_flag() -> None:
    obs = torch.arange(6, dtype=torch.float32).reshape(3, 1, 1, 2)
    act = torch.tensor([1.0, 2.0, 3.0]).reshape(3, 1, 1, 1)
    rew = torch.tensor([10.0, 20.0, 30.0]).reshape(3, 1, 1)
    ep = Episodes(obs, act, rew, torch.ones(3, 1, 1))
    x, actions, rewards, masks = trial_inputs([ep, ep])
    assert x.shape == (6, 1, 2 + 1 + 2) and actions.shape == (6, 1, 1)
    assert x[:3, 0, 2].tolist() == [0.0, 1.0, 2.0]  # previous action, 0 at a start
    assert x[3:, 0, 3].tolist() == [0.0, 10.0, 20.0]  # previous reward, reset per episode
    assert x[:, 0, 4].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert rewards[:, 0].tolist() == [10.0, 20.0, 30.0] * 2 and masks.sum() == 6


def test_ppo_starts_on_policy_and_its_first_step_lowers_the_loss() -> None:
    learner, tasks, recipe = _learner()
    data = Trials.of(learner.trials(tasks, 2), learner.policy, recipe)
    dist = learner.policy.unroll(data.x, data.masks)
    ratio = torch.exp(dist.log_prob(data.actions).sum(-1) - data.old_logp)
    assert torch.allclose(ratio[data.masks > 0], torch.ones(()), atol=1e-5)
    from mtrl.kinds.rl2 import trial_loss

    before, kl = trial_loss(learner.policy, data, recipe.ppo)
    assert abs(float(kl)) < 1e-6  # on-policy: no divergence yet
    learner._update(data)
    after, kl = trial_loss(learner.policy, data, recipe.ppo)
    assert float(after.detach()) < float(before.detach()) and float(kl) > 0


def test_target_kl_stops_an_iterations_updates_once_the_policy_moved_that_far() -> None:
    stats = {}
    for target in (0.0, 1e-3):  # the same seed, trials and minibatches
        learner, tasks, _ = _learner(
            ppo=TrialPPOConfig(lr=0.05, epochs=10, minibatches=3, target_kl=target)
        )
        stats[target] = learner.step(tasks)
    assert stats[0.0]["updates"] == 30 and stats[0.0]["kl"] > 1.5e-3  # it moves past it
    assert 1 <= stats[1e-3]["updates"] < 30 and stats[1e-3]["kl"] <= 1.5e-3
    learner, tasks, _ = _learner(ppo=TrialPPOConfig(lr=0.05, minibatches=3, target_kl=1e-12))
    assert learner.step(tasks)["updates"] == 1  # the first (on-policy) minibatch steps


def test_bad_rl2_recipes_name_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=r"gru = 0.*recurrent state"):
        from_dict(RL2Recipe, {"kind": "rl2", "gru": 0})
    with pytest.raises(ConfigError, match=r"ppo\.minibatches"):
        from_dict(RL2Recipe, {"kind": "rl2", "meta_batch": 2, "trials_per_task": 1})
    bad = tmp_path / "bad.toml"
    bad.write_text('kind = "rl2"\nenv = "MT10"\n')
    assert main(["train", str(bad), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "mtrl: error" in err and "none held out" in err and "env = 'MT10'" in err
    assert not (tmp_path / "r").exists()


def test_adapt_reports_returns_episode_by_episode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = RL2Recipe(horizon=10, gru=8, meta_batch=2, trials_per_task=2, iterations=1)
    train_rl2(recipe, tmp_path / "run")
    assert main(["adapt", str(tmp_path / "run"), "--tasks", "3", "--steps", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["x"] == "episodes" and set(doc["curves"]) == {
        "RL² (memory across episodes)",
        "memory reset each episode",
        "random init",
    }
    assert [p["steps"] for p in doc["curves"]["random init"]] == [0, 1, 2]
    assert (tmp_path / "run" / "plots" / "adaptation.png").is_file()


@pytest.mark.slow
def test_rl2_learns_to_reach_navigation2d_goals(tmp_path: Path) -> None:
    recipe = RL2Recipe(horizon=50, gru=64, meta_batch=10, trials_per_task=5, iterations=40)
    res = train_rl2(recipe, tmp_path / "run")
    first = RunDir.open(tmp_path / "run").read_metrics()[0]
    # a random walk from the origin ends ~0.7 from a goal; trained, the trials' returns
    # (minus the summed distance) shrink by well over a third
    assert float(first["post_return"]) < -35.0
    assert res["final_post_return"] > 0.6 * float(first["post_return"])
    assert res["final_pre_return"] > 0.6 * float(first["pre_return"])


def test_mtrl_compare_compares_meta_rl_runs_by_their_held_out_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "rl2.toml"
    recipe.write_text(
        'kind = "rl2"\nhorizon = 10\ngru = 8\nmeta_batch = 2\ntrials_per_task = 2\n'
        "iterations = 1\n[ppo]\nminibatches = 2\n"
    )
    out = tmp_path / "cmp"
    assert main(["compare", str(recipe), "--vary", "gru=8,16", "--out", str(out)]) == 2
    assert "held_out.tasks" in capsys.readouterr().err and not out.exists()
    args = ["compare", str(recipe), "--vary", "gru=8,16", "--seeds", "2", "--out", str(out)]
    assert main([*args, "--set", "held_out.tasks=3", "--metric", "return"]) == 0
    doc = json.loads((out / "compare.json").read_text())
    assert [v["label"] for v in doc["variants"]] == ["gru=8", "gru=16"]
    assert doc["variants"][0]["metric"] == "return" and doc["variants"][0]["tasks"] == 3
    summary = json.loads((out / "gru=8" / "seed_1" / "summary.json").read_text())["results"]
    rows = summary["per_task"]
    assert len(rows) == 3 and summary["held_out_steps"] == 1
    assert summary["held_out_return"] == pytest.approx(sum(r["return"] for r in rows) / 3)
