"""Behaviour cloning on a small suite of expert demonstrations, for MT-SAC's actor and
MT-PPO's policy: the clone's success is logged at env step 0 of the run; DAgger rounds
after it label the clone's own states with the expert's actions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.distributions import Normal

import mtrl
from mtrl.cli import main
from mtrl.collect import collect
from mtrl.config import from_dict
from mtrl.demos.bc import gaussian_bc_loss, normalize_actions
from mtrl.demos.config import DemosConfig
from mtrl.demos.dagger import DaggerConfig, aggregate, labelled_rollouts, teacher_policy
from mtrl.demos.dataset import open_dataset, per_task_summary
from mtrl.demos.regulariser import RegulariserConfig
from mtrl.demos.self_imitation import SelfImitationConfig
from mtrl.envs.vector import MultiTaskEnvConfig, eval_env_config, make_multitask_env
from mtrl.errors import ConfigError, MtrlError
from mtrl.kinds.mtppo import MTPPORecipe, train_mtppo
from mtrl.kinds.mtsac import MTSACRecipe, train_mtsac
from mtrl.recipes import parse_recipe
from mtrl.runs import RunDir

# three MT10 tasks whose scripted experts succeed on every episode
TASKS = ["drawer-close-v3", "button-press-topdown-v3", "window-open-v3"]
DATASET = "mtrl/mt10-3tasks-expert-v0"


def test_gaussian_cloning_loss_is_the_mean_error_or_the_likelihood() -> None:
    g = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g) * 0.3
    actions = torch.randn(4, 3, generator=g)
    torch.testing.assert_close(
        gaussian_bc_loss("nll", actions, mean, log_std),
        -Normal(mean, log_std.exp()).log_prob(actions).sum(-1),
    )
    torch.testing.assert_close(
        gaussian_bc_loss("mse", actions, mean, log_std), ((mean - actions) ** 2).sum(-1)
    )


@pytest.fixture(scope="module")
def three_tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten expert episodes of each of the three tasks, through the CLI."""
    root = tmp_path_factory.mktemp("datasets")
    argv = ["demos", "collect", "MT10", "--policy", "expert", "--episodes", "10"]
    assert main([*argv, "--tasks", ",".join(TASKS), "--out", str(root)]) == 0
    return root


def test_collect_takes_a_subset_of_a_suite(three_tasks: Path) -> None:
    data = open_dataset(DATASET, three_tasks)
    assert data.storage.metadata["mtrl_tasks"] == TASKS
    rows = per_task_summary(data)
    assert [r["task"] for r in rows] == TASKS
    assert all(r["episodes"] == 10 and r["success"] == 1.0 for r in rows)
    with pytest.raises(MtrlError, match="not a Minari id"):
        collect("MT10", "expert", 1, three_tasks, tasks=TASKS, ident="no-version")


def _common(root: Path) -> dict[str, Any]:
    return {
        "seed": 0,
        "threads": 1,
        "eval_episodes": 10,
        "env": {"name": "MT10", "tasks": TASKS},
        "demos": {"dataset": DATASET, "root": str(root), "bc": {"batch_size": 255}},
    }


def _clone_success(run_dir: Path) -> list[float]:
    """Per-task success of the step-0 evaluation (the clone, before any RL)."""
    rows = RunDir.open(run_dir).read_metrics()
    [first] = [r for r in rows if r.get("eval_success") and int(r["step"]) == 0]
    return [float(first[f"success/{i}"]) for i in range(len(TASKS))]


def test_mtppo_takes_cloning_only() -> None:
    """MT-PPO's [demos] has the cloning table only: MT-SAC's tables are unknown keys
    there, and the error names the kinds that take them."""
    base = {"kind": "mtppo", "env": {"name": "MT10", "tasks": TASKS}}
    demos = {"dataset": DATASET, "bc": {"steps": 10}}
    for table in ("critic_warm_start", "dagger", "replay", "proposal"):
        recipe = base | {"demos": demos | {table: {}}}
        with pytest.raises(
            ConfigError, match=rf"'demos\.{table}'.* belongs to kind 'mtsac' or 'continual'"
        ):
            parse_recipe(recipe, "recipe.toml")
    assert parse_recipe(base | {"demos": demos}, "recipe.toml")[1].demos is not None
    with pytest.raises(ConfigError, match="no technique uses it"):
        from_dict(MTPPORecipe, base | {"demos": {"dataset": DATASET}})


def test_old_flat_demos_keys_name_their_new_place() -> None:
    base = {"kind": "mtsac", "env": {"name": "MT10", "tasks": TASKS}}
    for old, new in (
        ("bc_steps", "demos.bc.steps"),
        ("critic_steps", "demos.critic_warm_start.steps"),
        ("clone_proposal", r"the table \[demos.proposal\]"),
        ("reward", r"the table \[demos.sqil\]"),
    ):
        with pytest.raises(ConfigError, match=rf"'demos\.{old}' has moved: it is now {new}"):
            parse_recipe(base | {"demos": {"dataset": DATASET, old: 1}}, "recipe.toml")


@pytest.mark.slow
def test_cloning_solves_a_small_suite_for_both_agents(three_tasks: Path, tmp_path: Path) -> None:
    """The demonstrators succeed on every episode, and evaluation draws from the same
    goals, so a clone must solve most episodes of every task: each >= 0.7 (7 of 10) for
    MT-SAC's squashed-Gaussian actor (BC then 30 random env steps) and MT-PPO's Gaussian
    policy (BC then one short rollout)."""
    sac = from_dict(
        MTSACRecipe,
        _common(three_tasks)
        | {
            "kind": "mtsac",
            "total_steps": 30,
            "learning_starts": 10**6,
            "buffer_capacity": 1000,
            "batch_size": 255,
            "sac": {"actor": {"hidden": [256, 256]}, "critic": {"hidden": [256, 256]}},
        },
    )
    train_mtsac(sac, tmp_path / "sac")
    assert min(_clone_success(tmp_path / "sac")) >= 0.7
    ppo = from_dict(
        MTPPORecipe,
        _common(three_tasks)
        | {
            "kind": "mtppo",
            "total_steps": 30,
            "ppo": {
                "n_steps": 10,
                "log_std_init": -2.0,
                "actor": {"hidden": [256, 256], "activation": "relu"},
            },
        },
    )
    train_mtppo(ppo, tmp_path / "ppo")
    assert min(_clone_success(tmp_path / "ppo")) >= 0.7


@pytest.mark.slow
def test_self_imitation_adds_the_clones_successful_episodes(
    three_tasks: Path, tmp_path: Path
) -> None:
    """The clone solves these tasks, so with RL running from the first step its own
    successful training episodes (full 500-step episodes) join the demonstrations:
    exactly as many as training episodes succeeded, all in the checkpoint."""
    recipe = from_dict(
        MTSACRecipe,
        _common(three_tasks)
        | {
            "kind": "mtsac",
            "total_steps": 3000,  # two episodes per task
            "learning_starts": 0,
            "updates_per_step": 0.05,
            "log_every": 3000,
            "buffer_capacity": 3000,
            "batch_size": 255,
            "eval_episodes": 1,
            "sac": {
                "init_alpha": 0.001,
                "actor": {"hidden": [256, 256]},
                "critic": {"hidden": [256, 256]},
            },
        },
    )
    demos = recipe.demos
    assert demos is not None
    recipe = replace(
        recipe,
        demos=replace(demos, regulariser=RegulariserConfig(), self_imitation=SelfImitationConfig()),
    )
    train_mtsac(recipe, tmp_path / "sil")
    run = RunDir.open(tmp_path / "sil")
    [last] = [r for r in run.read_metrics() if r.get("imitated_episodes")]
    # every task finished two training episodes: train_success is their mean success
    assert int(last["imitated_episodes"]) == round(float(last["train_success"]) * 6) >= 3
    added = run.load_checkpoint()["self_imitation"]["added"]
    assert len(added) == int(last["imitated_episodes"])
    assert all(len(rows["obs"]) == 500 and task in (0, 1, 2) for task, rows in added)


def test_dagger_rows_follow_the_demonstrations() -> None:
    demos = {
        "obs": np.zeros((2, 3), np.float32),
        "action": np.ones((2, 2), np.float32),
        "task_id": np.array([0, 1]),
        "reward": np.zeros(2, np.float32),  # not cloning data: dropped
    }
    rows = {
        "obs": np.full((1, 3), 5.0),
        "action": np.full((1, 2), -1.0),
        "task_id": np.array([2]),
    }
    out = aggregate(demos, rows)
    assert sorted(out) == ["action", "obs", "task_id"]
    np.testing.assert_array_equal(out["obs"], [[0, 0, 0], [0, 0, 0], [5, 5, 5]])
    np.testing.assert_array_equal(out["action"][:, 0], [1, 1, -1])
    np.testing.assert_array_equal(out["task_id"], [0, 1, 2])
    assert out["obs"].dtype == np.float32


def test_dagger_labels_are_the_experts_actions_on_the_states_visited() -> None:
    """Rolled out with zero actions, every visited state is paired with what Meta-World's
    scripted expert (a fresh one, state by state) does there, in the actor's [-1, 1]
    scale; rolled out with the expert itself, every episode succeeds."""
    from metaworld.policies import ENV_POLICY_MAP

    cfg = eval_env_config(MultiTaskEnvConfig(name="MT10", tasks=TASKS, max_episode_steps=150))
    with make_multitask_env(cfg) as env:
        expert = teacher_policy("expert", env, cfg.label, mtrl.load)
        zero = np.zeros((3, 4), np.float32)
        rows, steps, _ = labelled_rollouts(env, lambda obs: zero, expert, 2, seed=5)
        assert steps == len(rows["obs"]) == 2 * 3 * 150
        np.testing.assert_array_equal(np.bincount(rows["task_id"]), [300, 300, 300])
        low, high = env.single_action_space.low, env.single_action_space.high
        for obs, tid, label in zip(rows["obs"], rows["task_id"], rows["action"], strict=True):
            reference = ENV_POLICY_MAP[TASKS[tid]]().get_action(obs.astype(np.float64))
            np.testing.assert_allclose(label, normalize_actions(reference, low, high), atol=1e-6)
        _, _, rate = labelled_rollouts(env, expert, expert, 1, seed=5)
    assert rate == 1.0


def test_dagger_config_errors(three_tasks: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[demos.dagger\] needs \[demos.bc\]"):
        DemosConfig(dataset=DATASET, dagger=DaggerConfig())
    pendulum = make_multitask_env(MultiTaskEnvConfig(name="pendulum", num_tasks=2))
    with pendulum as env, pytest.raises(MtrlError, match="Meta-World suite"):
        teacher_policy("expert", env, "pendulum", mtrl.load)
    recipe = from_dict(
        MTSACRecipe,
        _common(three_tasks)
        | {"kind": "mtsac", "total_steps": 10, "buffer_capacity": 100, "batch_size": 30},
    )
    demos = recipe.demos
    assert demos is not None
    missing = replace(recipe, demos=replace(demos, dagger=DaggerConfig(teacher="runs/x")))
    with pytest.raises(MtrlError, match="neither 'expert' nor a run directory"):
        train_mtsac(missing, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before the run directory


@pytest.mark.slow
def test_dagger_rounds_are_env_steps_of_the_run(three_tasks: Path, tmp_path: Path) -> None:
    """A one-demonstration clone, then two DAgger rounds of one episode per task: the
    clone is evaluated at env step 0 and each re-clone at the env steps its rollouts
    took (3 tasks x 500 steps per round); the run then stands at 3000 env steps, its
    checkpoint there, and its final success is the last re-clone's."""
    recipe = from_dict(
        MTSACRecipe,
        _common(three_tasks)
        | {
            "kind": "mtsac",
            "total_steps": 10,
            "learning_starts": 10**6,
            "buffer_capacity": 100,
            "batch_size": 255,
            "eval_episodes": 5,
            "sac": {"actor": {"hidden": [256, 256]}, "critic": {"hidden": [256, 256]}},
        },
    )
    demos = recipe.demos
    assert demos is not None
    recipe = replace(
        recipe, demos=replace(demos, episodes_per_task=1, dagger=DaggerConfig(rounds=2, episodes=1))
    )
    results = train_mtsac(recipe, tmp_path / "dagger")
    run = RunDir.open(tmp_path / "dagger")
    rows = run.read_metrics()
    evals = [r for r in rows if r.get("eval_success")]
    assert [int(r["step"]) for r in evals] == [0, 1500, 3000]
    dagger = [r for r in rows if r.get("dagger_rows")]
    assert [int(r["dagger_rows"]) for r in dagger] == [3 * 500 + 1500, 3 * 500 + 3000]
    # the first cloning, then the re-clone of each round
    assert {r["dagger_round"] for r in rows if r.get("bc_step")} == {"", "1", "2"}
    assert results["steps"] == 3000
    assert run.latest_checkpoint().name == "step_3000.pt"
    assert results["mean_success"] == pytest.approx(float(evals[-1]["eval_success"]))
    print("DAgger evals:", [round(float(r["eval_success"]), 2) for r in evals])
    # the run can teach another run on its env, and only on its env
    cfg = eval_env_config(recipe.env)
    with make_multitask_env(cfg) as env:
        teacher = teacher_policy(str(tmp_path / "dagger"), env, cfg.label, mtrl.load)
        obs, _ = env.reset(seed=0)
        trained = mtrl.load(tmp_path / "dagger")
        np.testing.assert_array_equal(teacher(obs), trained.act(obs["observation"], obs["task_id"]))
        with pytest.raises(MtrlError, match="was trained on"):
            teacher_policy(str(tmp_path / "dagger"), env, "MT50", mtrl.load)
