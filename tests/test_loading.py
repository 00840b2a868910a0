"""`mtrl.load`: every kind of run loads as something to act with (or, for sine, use)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from recipes import MAML_RL, MTPPO, MTSAC, PEARL, RL2, SB3, SINE, derived
from stable_baselines3 import PPO

import mtrl
from mtrl.cli import main
from mtrl.errors import MtrlError
from mtrl.evaluation import evaluate
from mtrl.recipes import parse_recipe

# each kind's shared recipe (tests/recipes.py), cut short
RECIPES = {
    "mtsac": derived(
        MTSAC, "total_steps=600", 'env.name="navigation2d"', "env.num_tasks=3", "batch_size=30"
    ),
    "mtppo": derived(
        MTPPO, "total_steps=512", "ppo.epochs=1", 'env.name="pendulum"', "env.num_tasks=2"
    ),
    "sb3": derived(SB3, "total_steps=256", "algo_kwargs.n_steps=64"),
    "maml-rl": derived(MAML_RL, "iterations=2", "meta_batch=2", "horizon=10"),
    "rl2": derived(RL2, "iterations=2", "horizon=10"),
    "pearl": derived(PEARL, "iterations=2", "train_steps=2"),
    "sine": derived(SINE, "iterations=20", "meta_batch=4", "eval.tasks=4", "eval.max_steps=1"),
}


def _train(name: str, root: Path) -> Path:
    kind, cfg = parse_recipe(tomllib.loads(RECIPES[name]), name)
    kind.train(cfg, root / name)
    return root / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {name: _train(name, root) for name in RECIPES}


def test_a_loaded_mtsac_policy_reproduces_mtrl_eval(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    trained = mtrl.load(runs["mtsac"])
    assert trained.kind == "mtsac" and trained.env_config.name == "navigation2d"
    assert trained.checkpoint.name == "step_600.pt"
    env = trained.make_env()
    rows = evaluate(env, lambda o: trained.act(o["observation"], o["task_id"]), 2, seed=5)
    env.close()
    assert main(["eval", str(runs["mtsac"]), "--episodes", "2", "--seed", "5", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["per_task"]
    assert [r["return"] for r in rows] == pytest.approx([r["return"] for r in cli])


def test_mtrl_eval_samples_actions_of_an_older_checkpoint_on_request(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mtrl eval --checkpoint STEP --stochastic`: that checkpoint's policy with sampled
    actions, the same episodes as a loop over `mtrl.load`'s act(deterministic=False) on
    the same seed, kept in a file of its own beside eval.json; a missing step is named
    with the steps there are, and writes nothing."""
    import shutil

    import torch

    run = tmp_path / "run"
    shutil.copytree(runs["mtsac"], run)
    older = sorted(run.glob("checkpoints/step_*.pt"), key=lambda p: int(p.stem[5:]))[0]
    step = int(older.stem[5:])
    assert step < 600
    args = ["eval", str(run), "--episodes", "2", "--seed", "5", "--json"]
    main_eval = [p.read_text() for p in run.glob("eval.json")]  # another test's, or none
    assert main([*args, "--checkpoint", str(step), "--stochastic"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["checkpoint"], doc["actions"]) == (older.name, "sampled")
    assert json.loads((run / f"eval_step_{step}_sampled.json").read_text()) == doc
    assert [p.read_text() for p in run.glob("eval.json")] == main_eval

    assert main([*args, "--checkpoint", str(step)]) == 0
    mean = json.loads(capsys.readouterr().out)
    assert mean["actions"] == "mean" and (run / f"eval_step_{step}.json").is_file()
    older_run = tmp_path / "older"  # the run as it was at that step, for mtrl.load
    shutil.copytree(run, older_run)
    for p in older_run.glob("checkpoints/step_*.pt*"):
        if not p.name.startswith(older.name):
            p.unlink()
    trained = mtrl.load(older_run)
    assert trained.checkpoint.name == older.name
    env = trained.make_env()
    torch.manual_seed(5)
    rows = evaluate(env, lambda o: trained.act(o["observation"], o["task_id"], False), 2, seed=5)
    env.close()
    assert [r["return"] for r in rows] == pytest.approx([r["return"] for r in doc["per_task"]])
    assert [r["return"] for r in rows] != pytest.approx([r["return"] for r in mean["per_task"]])

    before = sorted(p.name for p in run.iterdir())
    assert main([*args, "--checkpoint", "7"]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint 7" in err and "(steps: 600, " in err and f"{step})" in err
    assert sorted(p.name for p in run.iterdir()) == before


@pytest.mark.parametrize("name", ["mtsac", "mtppo", "sb3", "maml-rl", "rl2", "pearl"])
def test_every_policy_kind_acts_on_single_and_batched_observations(
    runs: dict[str, Path], name: str
) -> None:
    trained = mtrl.load(runs[name])
    if name in ("maml-rl", "rl2", "pearl"):
        space = gym.make("mtrl/Navigation2D-v0").observation_space
        obs = np.zeros((3, *space.shape), dtype=np.float32)
    else:
        env = trained.make_env()
        obs = env.reset(seed=0)[0]["observation"][:1].repeat(3, axis=0)
        env.close()
    batch = trained.act(obs, [0, 1, 1])
    assert batch.shape[0] == 3 and np.isfinite(batch).all()
    np.testing.assert_allclose(trained.act(obs[1], 1), batch[1], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(trained.act(obs, [0, 1, 1]), batch)  # deterministic
    sampled = trained.act(obs, [0, 1, 1], deterministic=False)
    assert sampled.shape == batch.shape


def test_sb3_runs_also_save_a_model_zip_that_sb3_opens(runs: dict[str, Path]) -> None:
    model = PPO.load(runs["sb3"] / "model.zip")
    assert model.num_timesteps >= 256


def test_sine_runs_load_as_a_model_and_bad_task_ids_are_refused(runs: dict[str, Path]) -> None:
    sine = mtrl.load(runs["sine"])
    assert sine.model is not None
    with pytest.raises(MtrlError, match="mtrl adapt"):
        sine.act(np.zeros(1))
    trained = mtrl.load(runs["mtsac"])
    with pytest.raises(MtrlError, match="3 tasks"):
        trained.act(np.zeros(2), 3)


def test_a_checkpoint_of_another_kind_is_named_not_a_key_error(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    """A run whose config.toml was edited to name another real kind: mtrl.load and
    `mtrl eval` say the checkpoint does not fit, and what it holds."""
    import shutil

    run = tmp_path / "edited"
    shutil.copytree(runs["mtsac"], run)
    (run / ".lock").unlink(missing_ok=True)
    (run / "config.toml").write_text(RECIPES["mtppo"])
    misfit = r"does not fit kind 'mtppo'.*written by kind 'mtsac'.*'actor_critic'.*agent"
    with pytest.raises(MtrlError, match=misfit):
        mtrl.load(run)
    assert main(["eval", str(run), "--episodes", "1"]) == 2
