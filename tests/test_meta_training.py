"""Sine meta-training runs, resume, divergence, `mtrl train`/`adapt`, and MAML-RL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mtrl.cli import main
from mtrl.config import write_toml
from mtrl.errors import ConfigError, TrainingDivergedError
from mtrl.kinds.maml_rl import MetaRLRecipe, adapt_policy, advantages, build, vpg_losses
from mtrl.kinds.sine import (
    RegressionEvalConfig,
    RegressionRecipe,
    load_learner,
    train_regression,
)
from mtrl.meta import MetaLearnerConfig
from mtrl.runs import RunDir

SMALL_EVAL = RegressionEvalConfig(tasks=50, query=20, max_steps=2)


def _sine(**kw: object) -> RegressionRecipe:
    base: dict[str, object] = {
        "iterations": 40,
        "log_every": 10,
        "checkpoint_every": 20,
        "meta_batch": 5,
        "eval": SMALL_EVAL,
    }
    return RegressionRecipe(**(base | kw))  # type: ignore[arg-type]


def test_sine_run_writes_metrics_checkpoints_and_an_adaptation_summary(tmp_path: Path) -> None:
    res = train_regression(_sine(), tmp_path / "run")
    run = RunDir.open(tmp_path / "run")
    assert [int(r["iteration"]) for r in run.read_metrics()] == [10, 20, 30, 40]
    assert sorted(p.name for p in run.checkpoints.glob("*.pt")) == ["step_20.pt", "step_40.pt"]
    summary = run.read_summary()
    assert summary["algorithm"] == "maml" and summary["seed"] == 0
    assert [p["steps"] for p in res["adaptation"]] == [0, 1, 2]
    assert res["mse_after_1_step"] == summary["results"]["mse_after_1_step"]


def test_resume_continues_exactly_where_the_run_stopped(tmp_path: Path) -> None:
    recipe = _sine(meta=MetaLearnerConfig(algorithm="metasgd"))
    train_regression(recipe, tmp_path / "full")
    half = _sine(meta=MetaLearnerConfig(algorithm="metasgd"), iterations=20)
    train_regression(half, tmp_path / "resumed")
    # the same recipe with the full budget, continued from the step-20 checkpoint
    (tmp_path / "resumed" / "config.toml").unlink()
    write_toml(tmp_path / "resumed" / "config.toml", recipe)
    train_regression(recipe, tmp_path / "resumed", resume=True)
    a = load_learner(RunDir.open(tmp_path / "full"), recipe).state_dict()
    b = load_learner(RunDir.open(tmp_path / "resumed"), recipe).state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_a_diverging_run_stops_with_a_clear_error_and_keeps_its_checkpoints(
    tmp_path: Path,
) -> None:
    recipe = _sine(meta=MetaLearnerConfig(inner_lr=1e6), checkpoint_every=1, log_every=1)
    with pytest.raises(TrainingDivergedError, match="no checkpoint was written yet; lower meta_lr"):
        train_regression(recipe, tmp_path / "run")  # diverges in its first iteration
    assert (tmp_path / "run" / "config.toml").is_file()


def test_train_and_adapt_commands_on_a_sine_recipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "sine.toml"
    write_toml(recipe, _sine())
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--run-dir", str(run), "--set", "iterations=20"]) == 0
    assert main(["adapt", str(run), "--steps", "2", "--pretrain-iterations", "20"]) == 0
    out = capsys.readouterr().out
    assert "random init" in out and "pretrained on pooled tasks" in out
    doc = json.loads((run / "adapt.json").read_text())
    assert set(doc["curves"]) == {
        "maml (meta-learned)",
        "pretrained on pooled tasks",
        "random init",
    }
    assert (run / "plots" / "adaptation.png").stat().st_size > 1000
    assert main(["adapt", str(run), "--task-batch", "2"]) == 2  # MAML-RL's option only
    assert "--task-batch applies to MAML-RL runs" in capsys.readouterr().err
    assert main(["train", str(recipe), "--run-dir", str(run)]) == 2  # never overwrites
    assert "already holds a run" in capsys.readouterr().err


def test_bad_recipes_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('kind = "sinus"\n')
    assert main(["train", str(bad)]) == 2
    assert "unknown recipe kind 'sinus'" in capsys.readouterr().err
    bad.write_text("shots = 5\n")
    assert main(["train", str(bad)]) == 2
    assert "missing key 'kind'" in capsys.readouterr().err
    bad.write_text('kind = "sine"\n[meta]\nalgorithm = "reptile"\n')
    assert main(["train", str(bad)]) == 2
    assert "meta.algorithm" in capsys.readouterr().err
    bad.write_text('kind = "maml-rl"\nenv = "MT10"\n')
    assert main(["train", str(bad), "--run-dir", str(tmp_path / "r")]) == 2
    assert "parametric family" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert main(["adapt", str(tmp_path / "nowhere")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["adapt", str(tmp_path / "nowhere"), "--tasks", "1"]) == 2
    assert "--tasks >= 2" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nowhere"), "--episodes", "0"]) == 2
    assert "--episodes must be >= 1" in capsys.readouterr().err


def test_bench_meta_reports_tasks_per_second(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "meta", "--steps", "2", "--repeats", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tasks_per_s"]["mtrl"] > 0 and doc["tasks_per_s"]["mtrl (vmap path)"] > 0


def test_maml_rl_inner_step_equals_a_per_task_reference() -> None:
    recipe = MetaRLRecipe(meta_batch=3, episodes_per_task=4, horizon=15)
    algo, family = build(recipe, 3, 4)
    algo.mp.double()
    tasks = family.sample_tasks(3, np.random.default_rng(0))
    algo.sampler.set_tasks(tasks)
    params = algo.mp.params()
    eps = algo.sampler.sample(lambda o: torch.randn(o.shape[0], o.shape[1], 2))
    eps.obs, eps.actions = eps.obs.double(), eps.actions.double()
    eps.rewards, eps.masks = eps.rewards.double(), eps.masks.double()
    adv = advantages(eps, 0.99, 1.0, 15)
    fast = adapt_policy(algo.mp, params, eps, adv, first_order=False, steps=1)
    for t in range(3):
        one = type(eps)(
            eps.obs[:, t : t + 1],
            eps.actions[:, t : t + 1],
            eps.rewards[:, t : t + 1],
            eps.masks[:, t : t + 1],
        )
        loss = vpg_losses(algo.mp.policy, params, one, adv[t : t + 1])[0]
        grads = torch.autograd.grad(loss, list(params.values()))
        for (name, p), g in zip(params.items(), grads, strict=True):
            torch.testing.assert_close(fast[name][t], p - 0.1 * g, rtol=1e-9, atol=1e-12)
    # second order: the adapted parameters still depend on the meta-parameters
    outer = sum(v.sum() for v in fast.values())
    assert torch.autograd.grad(outer, params["mean.0.weight"])[0].abs().sum() > 0
    algo.sampler.close()


def test_meta_sgd_rl_learns_its_inner_rates(tmp_path: Path) -> None:
    recipe = MetaRLRecipe(
        meta_batch=2,
        episodes_per_task=3,
        horizon=10,
        iterations=2,
        meta=MetaLearnerConfig(algorithm="metasgd", inner_lr=0.1),
    )
    algo, family = build(recipe, 2, 3)
    before = [p.detach().clone() for p in algo.mp.lrs.values()]
    algo.step(family.sample_tasks(2, np.random.default_rng(0)))
    after = list(algo.mp.lrs.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    algo.sampler.close()


@pytest.mark.parametrize("algorithm", ["maml", "fomaml"])
def test_a_maml_trpo_step_keeps_the_adapted_policies_within_the_kl_bound(algorithm: str) -> None:
    """MAML-TRPO: one step moves the meta-parameters, the surrogate of the adapted
    policies improves, and their KL from the policies that sampled the data, recomputed
    by hand from the new meta-parameters, is within ``max_kl``."""
    from mtrl.kinds.maml_rl import OuterBatch, OuterConfig, act_fn, detached, log_probs

    recipe = MetaRLRecipe(
        meta_batch=3, episodes_per_task=4, horizon=15,
        meta=MetaLearnerConfig(algorithm=algorithm, inner_lr=0.1),
        outer=OuterConfig(method="trpo", max_kl=0.01),
    )  # fmt: skip
    algo, family = build(recipe, 3, 4)
    algo.sampler.set_tasks(family.sample_tasks(3, np.random.default_rng(0)))
    mp = algo.mp
    inner = algo.sampler.sample(act_fn(mp, detached(mp.params())))
    inner_adv = advantages(inner, 0.99, 1.0, 15)
    fast_eval = algo._adapt(inner, inner_adv, first_order=True, create=False)
    outer = algo.sampler.sample(act_fn(mp, fast_eval))
    b = OuterBatch(mp.policy, inner, inner_adv, outer, advantages(outer, 0.99, 1.0, 15), fast_eval)
    before = [p.detach().clone() for p in mp.parameters()]
    stats = algo._trpo_outer(b)
    assert stats["step_fraction"] > 0
    assert any(not torch.equal(x, y) for x, y in zip(before, mp.parameters(), strict=True))
    new = detached(algo._adapted(b))  # the adaptation itself needs autograd
    m0 = mp.policy.distribution(fast_eval, b.obs).mean
    m1 = mp.policy.distribution(new, b.obs).mean
    s0, s1 = fast_eval["log_std"].exp()[:, None, :], new["log_std"].exp()[:, None, :]
    kl = (torch.log(s1 / s0) + (s0**2 + (m0 - m1) ** 2) / (2 * s1**2) - 0.5).sum(-1)
    by_hand = float((((kl * b.masks).sum(1)) / b.masks.sum(1)).mean())
    assert by_hand <= 0.01 * (1 + 1e-4)
    assert by_hand == pytest.approx(stats["kl"], rel=1e-4, abs=1e-7)
    logp = log_probs(mp.policy, new, b.obs, b.act).detach()
    surrogate = float(b.task_mean(torch.exp(logp - b.old_logp) * b.outer_adv))
    assert surrogate == pytest.approx(-stats["outer_loss"], rel=1e-4)
    assert surrogate > float(b.task_mean(b.outer_adv))  # the surrogate before the step
    algo.sampler.close()


def test_maml_trpo_settings_are_checked_before_any_work(tmp_path: Path) -> None:
    from mtrl.config import from_dict

    with pytest.raises(ConfigError, match=r"outer\.max_kl"):
        from_dict(MetaRLRecipe, {"kind": "maml-rl", "outer": {"method": "trpo", "max_kl": 0}})
    with pytest.raises(ConfigError, match=r"outer\.method"):
        from_dict(MetaRLRecipe, {"kind": "maml-rl", "outer": {"method": "natural"}})


@pytest.mark.slow
def test_maml_learns_sine_regression_within_a_small_budget(tmp_path: Path) -> None:
    recipe = _sine(
        iterations=3000,
        meta_batch=25,
        log_every=500,
        checkpoint_every=3000,
        eval=RegressionEvalConfig(tasks=200, query=50, max_steps=1),
    )
    res = train_regression(recipe, tmp_path / "run")
    before, after = res["adaptation"][0]["mse"], res["adaptation"][1]["mse"]
    # an unadapted predictor of a random sine has MSE ~ E[A^2]/2 ~ 4.2; one step must help
    assert after < 1.5 and after < 0.6 * before


@pytest.mark.slow
def test_maml_rl_adapts_on_navigation2d(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = MetaRLRecipe(meta_batch=10, episodes_per_task=10, iterations=25, log_every=5)
    train_meta_rl_dir = tmp_path / "run"
    from mtrl.kinds.maml_rl import train_meta_rl

    train_meta_rl(recipe, train_meta_rl_dir)
    assert (
        main(
            [
                "adapt",
                str(train_meta_rl_dir),
                "--tasks",
                "10",
                "--steps",
                "1",
                "--pretrain-iterations",
                "0",
                "--json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    maml = doc["curves"]["maml (meta-learned)"]
    rand = doc["curves"]["random init"]
    assert maml[1]["return"] > maml[0]["return"]  # one VPG step improves held-out return
    assert maml[1]["return"] > rand[1]["return"]
    assert main(["plot", str(train_meta_rl_dir)]) == 0  # a family name, not a task list
    assert (train_meta_rl_dir / "plots" / "curves.png").is_file()


@pytest.mark.parametrize("env", ["halfcheetah-vel", "halfcheetah-dir"])
def test_maml_rl_runs_on_the_mujoco_families(env: str, tmp_path: Path) -> None:
    from mtrl.kinds.maml_rl import train_meta_rl

    recipe = MetaRLRecipe(env=env, meta_batch=2, episodes_per_task=2, horizon=20, iterations=2)
    res = train_meta_rl(recipe, tmp_path / "run")
    assert res["iterations"] == 2 and np.isfinite(res["final_post_return"])


def test_adapt_in_task_batches_reports_every_task_from_a_smaller_sampler(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Held-out tasks adapt a sampler's worth at a time (`mtrl adapt --task-batch`): all
    five tasks are reported from a sampler of two tasks' environments (the last batch
    padded), and a batch's numbers are those of its tasks adapted alone."""
    from mtrl.kinds.maml_rl import train_meta_rl
    from mtrl.loops.iterations import eval_stream
    from mtrl.meta.rl_sampler import held_out_tasks

    recipe = MetaRLRecipe(meta_batch=2, episodes_per_task=3, horizon=10, iterations=1)
    outcomes = []
    for count in (5, 2):
        torch.manual_seed(3)
        learner, family = build(recipe, 2, 3)
        assert len(learner.sampler.grid.envs) == 6  # type: ignore[union-attr]  # 2 x 3, not 5 x 3
        tasks = held_out_tasks(family, 5, eval_stream(0))[:count]
        outcomes.append(learner.adaptation_returns(tasks, 1)[0])
        learner.sampler.close()
    five, two = outcomes
    assert five.shape == (2, 5) and bool(torch.isfinite(five).all())
    torch.testing.assert_close(five[:, :2], two, rtol=0, atol=0)

    train_meta_rl(recipe, tmp_path / "run")
    args = ["adapt", str(tmp_path / "run"), "--tasks", "5", "--steps", "1", "--json"]
    assert main([*args, "--task-batch", "2", "--pretrain-iterations", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tasks"] == 5 and doc["task_batch"] == 2 and len(doc["curves"]) == 3
    # what each baseline trained on: one pooled iteration of 2 tasks x 3 episodes x 10 steps
    assert doc["env_steps"] == {"random init": 0, "pretrained on pooled tasks": 2 * 3 * 10}
    assert main([*args, "--task-batch", "0"]) == 2
    assert "--task-batch must be >= 1" in capsys.readouterr().err


def test_maml_rl_reports_held_out_tasks_after_its_inner_steps(tmp_path: Path) -> None:
    from mtrl.kinds.held_out import HeldOutConfig
    from mtrl.kinds.maml_rl import train_meta_rl

    recipe = MetaRLRecipe(
        meta_batch=2, episodes_per_task=2, horizon=10, iterations=1,
        held_out=HeldOutConfig(tasks=3, steps=1),
    )  # fmt: skip
    res = train_meta_rl(recipe, tmp_path / "run")
    assert len(res["per_task"]) == 3 and res["held_out_steps"] == 1
    assert res["held_out_return"] == pytest.approx(np.mean([r["return"] for r in res["per_task"]]))
