from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtrl.cli import main


def test_envs_list_json_has_families_suites_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["MT10"]["train_tasks"] == 10
    assert (rows["ML45"]["train_tasks"], rows["ML45"]["test_tasks"]) == (2250, 250)
    assert rows["halfcheetah-vel"]["gym_id"] == "mtrl/HalfCheetahVel-v0"
    assert {"cartpole", "pendulum", "navigation2d", "ant-goal", "CW20", "MT1:<env>"} <= set(rows)


def test_unknown_env_name_lists_close_matches(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs", "check", "navigation", "MT11"]) == 2
    err = capsys.readouterr().err
    assert "unknown env family or suite 'navigation'" in err and "navigation2d" in err


def test_envs_check_runs_the_checker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs", "check", "navigation2d", "pendulum"]) == 0
    out = capsys.readouterr().out
    assert out.count(" yes") == 2


def test_rollout_writes_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    code = main(
        [
            "envs",
            "rollout",
            "cartpole",
            "--episodes",
            "2",
            "--set",
            "env.num_tasks=3",
            "--run-dir",
            str(run),
        ]
    )
    assert code == 0
    assert "task_id" in capsys.readouterr().out
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["results"]["per_task"]) == 3 and summary["seed"] == 0
    assert summary["metaworld_reward_version"] == "v2"
    assert (run / "config.toml").read_text().count('name = "cartpole"') == 1
    # a second run into the same directory is refused and loses nothing
    assert main(["envs", "rollout", "cartpole", "--run-dir", str(run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert json.loads((run / "summary.json").read_text()) == summary


def test_bad_recipe_is_reported_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('policy = "expert"\nepisodes = 3\n')
    assert main(["envs", "rollout", "--recipe", str(recipe), "--run-dir", str(tmp_path / "x")]) == 2
    assert "unknown key 'episodes'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert (
        main(
            ["envs", "rollout", "cartpole", "--policy", "expert", "--run-dir", str(tmp_path / "y")]
        )
        == 2
    )
    assert "needs a Meta-World suite" in capsys.readouterr().err
    assert main(["envs", "rollout", "navigation2d", "--set", "env.num_tasks=99"]) == 2
    assert "num_tasks = 99 but navigation2d has 40" in capsys.readouterr().err
    assert main(["bench", "env", "--steps", "0"]) == 2
    assert "--steps and --repeats must be >= 1" in capsys.readouterr().err


def test_a_bad_rollout_config_leaves_no_run_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    code = main(["envs", "rollout", "cartpole", "--policy", "expert", "--run-dir", str(run)])
    assert code == 2 and "needs a Meta-World suite" in capsys.readouterr().err
    assert not run.exists()


def test_train_help_names_every_recipe_kind(capsys: pytest.CaptureFixture[str]) -> None:
    from mtrl.recipes import KINDS

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line[:2] == "  "]
    assert set(KINDS) <= set(listed)
