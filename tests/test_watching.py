"""Watching runs: TensorBoard events beside metrics.csv, progress lines off a terminal."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mtrl.cli import main
from mtrl.config import from_dict
from mtrl.envs.rollout_run import RolloutConfig
from mtrl.kinds.mtsac import MTSACRecipe, train_mtsac
from mtrl.plotting import column_name, short_task_labels
from mtrl.progress import ProgressLog, duration, latest_scores, progress_line
from mtrl.runs import RunDir
from mtrl.tables import decimals, format_table
from mtrl.tboard import row_step, scalar_tag, scalars


def _events(path: Path) -> EventAccumulator:
    acc = EventAccumulator(str(path))
    acc.Reload()
    return acc


def test_tags_steps_and_scalars_of_a_metrics_row() -> None:
    assert scalar_tag("eval_return") == "eval/return"
    assert scalar_tag("train_success") == "train/success"
    assert scalar_tag("critic_loss") == "train/critic_loss"
    assert scalar_tag("return/3") == "return/3"
    assert row_step({"iteration": 7.0, "x": 1}, 0) == 7
    assert row_step({"x": 1}, 4) == 4
    row = {"step": 10, "loss": 0.5, "eval_success": float("nan"), "name": "a", "ok": True}
    assert scalars(row) == {"train/loss": 0.5}


def _tiny_run(run: Path, total_steps: int, eval_every: int, num_tasks: int) -> None:
    """A small MT-SAC run on Navigation2D goals (learning from step 200)."""
    recipe = from_dict(
        MTSACRecipe,
        {
            "kind": "mtsac",
            "total_steps": total_steps,
            "learning_starts": 200,
            "batch_size": 32,
            "eval_every": eval_every,
            "eval_episodes": 1,
            "log_every": 200,
            "env": {"name": "navigation2d", "num_tasks": num_tasks},
            "sac": {"actor": {"hidden": [16]}, "critic": {"hidden": [16]}},
        },
    )
    train_mtsac(recipe, run)


def test_training_run_writes_tensorboard_events_matching_metrics(tmp_path: Path) -> None:
    _tiny_run(tmp_path / "run", total_steps=600, eval_every=600, num_tasks=2)
    acc = _events(tmp_path / "run")
    tags = set(acc.Tags()["scalars"])
    assert {"train/critic_loss", "train/alpha", "eval/return", "return/0", "return/1"} <= tags
    rows = RunDir.open(tmp_path / "run").read_metrics()
    logged = [(int(r["step"]), float(r["critic_loss"])) for r in rows if r.get("critic_loss")]
    seen = acc.Scalars("train/critic_loss")
    assert [e.step for e in seen] == [s for s, _ in logged]
    assert [e.value for e in seen] == pytest.approx([v for _, v in logged], rel=1e-6)


def test_a_one_task_run_plots_its_curves_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Per-task figures of a single task would repeat curves.png (and draw one bar)."""
    _tiny_run(tmp_path / "run", total_steps=400, eval_every=200, num_tasks=1)
    assert main(["plot", str(tmp_path / "run")]) == 0
    assert sorted(p.name for p in (tmp_path / "run" / "plots").iterdir()) == ["curves.png"]
    assert capsys.readouterr().out.count("wrote") == 1


def test_a_resume_hides_the_events_its_checkpoint_dropped(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", RolloutConfig())
    for step in (1, 2, 3, 4):
        run.log_metrics({"step": step, "loss": float(step)})
    run.release()
    again = RunDir.open(tmp_path / "run")
    again.truncate_metrics(2)  # the checkpoint kept steps 1 and 2
    for step in (3, 4):
        again.log_metrics({"step": step, "loss": 10.0 * step})
    again.release()
    seen = [(e.step, e.value) for e in _events(tmp_path / "run").Scalars("train/loss")]
    assert seen == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]


def test_progress_lines_say_where_how_fast_and_how_well() -> None:
    assert duration(42) == "42s" and duration(724) == "12m04s" and duration(11100) == "3h05m"
    assert latest_scores({"train_return": -3.1, "eval_success": 0.5}) == {
        "return": -3.1,
        "success": 0.5,
    }
    line = progress_line("env steps", "step", 12000, 100000, 80.0, {"return": -3.14159})
    assert line == (
        "mtrl: env steps 12,000/100,000 (12%) | 80.0 step/s | ETA 18m20s | return -3.14"
    )
    slow = progress_line("meta-train", "it", 6, 50, 1 / 11.25, {})
    assert slow == "mtrl: meta-train 6/50 (12%) | 11.2 s/it | ETA 8m15s"  # not "0.1 it/s"
    out = io.StringIO()
    log = ProgressLog(100, 40, "env steps", "step", every=0.0, stream=out)
    log.note({"step": 50, "train_return": 2.0})
    log.update(10)
    log.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("mtrl: at ")  # said once, first
    assert " step/s the run ends in ~" in lines[0]
    assert lines[1].startswith("mtrl: env steps 50/100 (50%)")
    assert lines[1].endswith("| return 2")
    assert lines[2].startswith("mtrl: env steps 50/100")


def test_cli_training_off_a_terminal_prints_progress_lines(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable, "-m", "mtrl.cli", "train", "experiments/mtsac_nav2d.toml",
            "--run-dir", str(tmp_path / "run"), "--set", "total_steps=402",
            "--set", "learning_starts=200", "--set", "eval_episodes=1", "--seed", "3",
            "--device", "cpu",
        ],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1],
    )  # fmt: skip
    # 4 sub-envs step past a budget of 402 (to 404): the progress stops at its total
    assert "mtrl: env steps 402/402 (100%)" in proc.stderr and "404/402" not in proc.stderr
    assert RunDir.open(tmp_path / "run").read_summary()["seed"] == 3  # --seed N = --set seed=N


def test_plot_labels_name_tasks_and_axes() -> None:
    labels = short_task_labels(
        ["navigation2d[goal=(0.137,-0.2302)]", "navigation2d[goal=(-0.459,-0.4835)]"], [0, 1]
    )
    assert labels == ["0: goal=(0.137,-0.2302)", "1: goal=(-0.459,-0.4835)"]
    assert short_task_labels(["reach-v3", "pick-place-v3"], [0, 1]) == [
        "0: reach-v3",
        "1: pick-place-v3",
    ]
    assert short_task_labels(["x" * 40], [12], width=10) == ["12: xxxxx…"]
    assert column_name("eval_success") == ("evaluation success", "success rate")
    assert column_name("return/3") == ("evaluation return of task 3", "return")
    assert column_name("train_return/3") == ("training return of task 3", "return")


def test_per_task_evaluation_curves_take_no_training_value_and_keep_full_labels() -> None:
    """MT-PPO logs per-task training returns in ``return/<id>`` every rollout and the
    evaluation's in the same columns; the evaluation curves read evaluation rows only,
    success and return each, with every task's label whole."""
    from mtrl.plotting import per_task_series

    long = "cartpole[length=0.7827,masspole=0.09306,masscart=0.5292,gravity=7.099,force_mag=15.44]"
    rows = [
        {"step": "2048", "train_return": "30", "return/0": "31", "return/1": "29"},
        {"step": "4096", "eval_return": "80", "eval_success": "", "return/0": "85",
         "return/1": "75", "success/0": "", "success/1": ""},
        {"step": "6144", "train_return": "500", "return/0": "500", "return/1": "500"},
        {"step": "8192", "eval_return": "200", "return/0": "210", "return/1": "190"},
    ]  # fmt: skip
    series = per_task_series(rows, "step", {0: long, 1: "cartpole-goal[target=0.77]"})
    assert list(series) == ["return"]  # no success values: no success panel
    (label0, xs0, ys0), (label1, _, ys1) = series["return"]
    assert (xs0, ys0, ys1) == ([4096.0, 8192.0], [85.0, 210.0], [75.0, 190.0])
    assert label0 == f"0: {long}" and label1 == "1: cartpole-goal[target=0.77]"  # uncut
    with_success = [dict(r, **{"success/0": "1.0"}) for r in rows if r.get("eval_return")]
    assert list(per_task_series(with_success, "step", {})) == ["success", "return"]


def test_table_columns_have_one_precision_and_line_up() -> None:
    rows = [
        {"task": "reach-v3", "return": 1234.567, "success": 1.0},
        {"task": "push-v3", "return": -5.2, "success": float("nan")},
        {"task": "pick", "return": 12.0, "success": 0.25},
    ]
    lines = format_table(rows, ["task", "return", "success"]).splitlines()
    assert lines[2].split() == ["reach-v3", "1234.6", "1.00"]
    assert lines[3].split() == ["push-v3", "-5.2", "-"]
    assert lines[4].split() == ["pick", "12.0", "0.25"]
    assert len({len(line) for line in lines[2:] if not line.endswith("-")}) == 1  # right-aligned
    assert decimals([0.5, 0.25]) == 3 and decimals([3.0]) == 2 and decimals([-150.0]) == 1


def test_train_help_explains_recipes_and_set(capsys: pytest.CaptureFixture[str]) -> None:
    from mtrl.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "experiments/" in text and "continual" in text and "sac.actor.hidden" in text
    assert "--seed" in text and "--device" in text
