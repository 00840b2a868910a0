"""`mtrl compare`: variant grids, stratified bootstrap, and a small real comparison."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w
from recipes import MTSAC, derived

from mtrl.cli import main
from mtrl.compare import parse_vary, summarize_variant, variants
from mtrl.config import read_toml
from mtrl.errors import ConfigError
from mtrl.stats import iqm, stratified_bootstrap_ci

# the shared MT-SAC recipe on Navigation2D, three layers (softmod needs them)
RECIPE = derived(
    MTSAC,
    "total_steps=400",
    "eval_every=400",
    "log_every=200",
    "checkpoint_every=400",
    'env.name="navigation2d"',
    "env.envs_per_task=2",
    "sac.actor.hidden=[16, 16, 16]",
    "sac.critic.hidden=[16, 16, 16]",
)


def test_vary_parses_tied_keys_literals_and_arrays() -> None:
    keys, values = parse_vary("sac.actor.arch+sac.critic.arch=shared,multihead")
    assert keys == ["sac.actor.arch", "sac.critic.arch"] and values == ["shared", "multihead"]
    assert parse_vary("sac.tau=0.01,0.005")[1] == [0.01, 0.005]
    assert parse_vary("sac.actor.hidden=[[64,64],[8]]")[1] == [[64, 64], [8]]
    with pytest.raises(ConfigError, match="key=v1,v2"):
        parse_vary("seed")
    with pytest.raises(ConfigError, match="non-empty"):
        parse_vary("sac.tau=1,,2")
    with pytest.raises(ConfigError, match="--seeds"):
        parse_vary("seed=1,2")


def test_variants_are_the_cartesian_product() -> None:
    grid = variants(["a+b=x,y", "c=1,2"])
    assert [v.label for v in grid] == ["a+b=x,c=1", "a+b=x,c=2", "a+b=y,c=1", "a+b=y,c=2"]
    assert grid[1].overrides == ('a="x"', 'b="x"', "c=2")
    assert [v.label for v in variants([])] == ["base"]
    tied = variants(["sac.actor.arch+sac.critic.arch=shared", "sac.tau=0.1"])
    assert [v.label for v in tied] == ["arch=shared,tau=0.1"]
    clash = variants(["sac.actor.arch=moe", "sac.critic.arch=soft"])  # both would be "arch"
    assert [v.label for v in clash] == ["sac.actor.arch=moe,sac.critic.arch=soft"]


def test_stratified_bootstrap_brackets_the_estimate_and_collapses_without_spread() -> None:
    same = np.tile([[0.2, 0.9, 0.5]], (3, 1))  # every seed scores the same
    assert stratified_bootstrap_ci(same, "mean") == pytest.approx((1.6 / 3, 1.6 / 3))
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=(5, 10))
    lo, hi = stratified_bootstrap_ci(scores, "iqm")
    assert lo < iqm(scores) < hi
    with pytest.raises(ValueError, match="runs, tasks"):
        stratified_bootstrap_ci(np.zeros(3))


def test_summary_uses_success_when_every_run_reports_it() -> None:
    runs = [
        [
            {"task_id": 0, "success": 1.0, "return": 5.0},
            {"task_id": 1, "success": 0.0, "return": 1.0},
        ],
        [
            {"task_id": 0, "success": 1.0, "return": 4.0},
            {"task_id": 1, "success": 0.5, "return": 2.0},
        ],
    ]
    s = summarize_variant(runs)
    assert s["metric"] == "success" and s["mean"] == pytest.approx(0.625)
    assert s["per_seed_mean"] == [0.5, 0.75] and s["per_task"][1]["success"] == 0.25
    nan = [[{**r, "success": float("nan")} for r in run] for run in runs]
    assert summarize_variant(nan)["metric"] == "return"


def test_compare_trains_every_variant_and_seed_then_reuses_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    out = tmp_path / "cmp"
    argv = ["compare", str(recipe), "--vary", "sac.actor.arch+sac.critic.arch=shared,softmod"]
    argv += ["--set", "eval_every=200"]  # two evaluations: a curve to draw
    opts = ["--seeds", "2", "--out", str(out), "--json", "--jobs", "2", "--metric", "return"]
    assert main([*argv, *opts]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [v["label"] for v in doc["variants"]] == ["arch=shared", "arch=softmod"]
    # Navigation2D reports success too; --metric return compares returns
    assert all(v["seeds"] == 2 and v["metric"] == "return" for v in doc["variants"])
    assert (out / "arch=softmod" / "seed_1" / "summary.json").is_file()
    assert (out / "compare.md").is_file() and (out / "compare.png").is_file()
    assert (out / "compare_curves.png").stat().st_size > 1000  # eval_return over env steps
    # a run trained with other package versions is reused, and the user told so
    summary = out / "arch=shared" / "seed_0" / "summary.json"
    doc = json.loads(summary.read_text())
    doc["versions"]["torch"] = "1.0.0"
    summary.write_text(json.dumps(doc))
    # runs and a comparison written before an option existed (here sac.reward_scale)
    # match a recipe that leaves it at its default: reused, not refused
    config = out / "arch=softmod" / "seed_0" / "config.toml"
    older = read_toml(config)
    del older["sac"]["reward_scale"]
    config.write_text(tomli_w.dumps(older))
    stored = json.loads((out / "compare.json").read_text())
    del stored["config"]["sac"]["reward_scale"]
    (out / "compare.json").write_text(json.dumps(stored))
    assert main([*argv, "--seeds", "3", "--out", str(out)]) == 0  # 4 reused, 2 new seeds
    captured = capsys.readouterr()
    assert captured.err.count("reusing") == 4 and captured.err.count("finished in") == 2
    assert captured.err.count("it was trained with torch 1.0.0 (now ") == 1
    assert "[2/2] arch=softmod seed 2: finished in" in captured.err  # a line per run
    assert "IQM" in captured.out


def test_a_recipe_edited_while_the_sweep_runs_changes_none_of_its_runs(tmp_path: Path) -> None:
    """The sweep reads its recipe once: an edit (here an unknown key and another gamma)
    after the first run started reaches neither the queued runs nor the comparison,
    and a worker's config error would come back as an mtrl error, not a broken pool."""
    import pickle

    from mtrl.errors import UnknownKeyError, UnknownNameError

    for err in (UnknownKeyError("a.b", "no key a.b"), UnknownNameError("env", "x", ["y"])):
        again = pickle.loads(pickle.dumps(err))
        assert type(again) is type(err) and str(again) == str(err)
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    out = tmp_path / "cmp"
    cmd = [
        sys.executable,
        "-m",
        "mtrl.cli",
        "compare",
        str(recipe),
        "--seeds",
        "2",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = out / "base" / "seed_0" / "config.toml"
    deadline = time.monotonic() + 300
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    recipe.write_text(RECIPE + "\n[sac]\ngamma = 0.5\nnot_a_key = 1\n")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()
    configs = [(out / "base" / f"seed_{s}" / "config.toml").read_text() for s in (0, 1)]
    assert "gamma = 0.99" in configs[1] and "not_a_key" not in configs[1]
    assert re.sub("^seed = 0$", "seed = 1", configs[0], flags=re.M) == configs[1]
    # evaluated only at the end: one point, no curve to draw (the bars show it)
    assert (out / "compare.png").is_file() and not (out / "compare_curves.png").exists()


def test_compare_checks_every_variant_before_training(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    out = tmp_path / "cmp"
    assert (
        main(["compare", str(recipe), "--vary", "sac.actor.arch=shared,wide", "--out", str(out)])
        == 2
    )
    assert not out.exists()
    sine = tmp_path / "s.toml"
    sine.write_text('kind = "sine"\n')
    assert main(["compare", str(sine), "--out", str(out)]) == 2
    assert not out.exists()


def test_paired_vary_axis_gives_one_variant_per_pair() -> None:
    """`k1|k2=a|b,c|d`: the arms of a curriculum comparison set two keys together."""
    grid = variants(
        ["curriculum.unlock|curriculum.sampler=either|sequential,all|targets", "sac.tau=0.1"]
    )
    assert [v.label for v in grid] == [
        "unlock|sampler=either|sequential,tau=0.1",
        "unlock|sampler=all|targets,tau=0.1",
    ]
    assert grid[1].overrides == (
        'curriculum.unlock="all"',
        'curriculum.sampler="targets"',
        "sac.tau=0.1",
    )
    with pytest.raises(ConfigError, match="needs 2 values"):
        parse_vary("a|b=x|y,z")
    with pytest.raises(ConfigError, match="paired keys"):
        parse_vary("a|b+c=x|y")


def test_a_run_is_its_whole_recipe_other_settings_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Re-running into the same --out with another budget would reuse runs of the old
    one: refused, naming the key, before anything trains. A run killed before its first
    checkpoint is started over instead of blocking the comparison."""
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    out = tmp_path / "cmp"
    argv = ["compare", str(recipe), "--seeds", "1", "--out", str(out), "--json"]
    assert main(argv) == 0
    run = out / "base" / "seed_0"
    first = json.loads((run / "summary.json").read_text())["results"]
    capsys.readouterr()
    assert main([*argv, "--set", "total_steps=200"]) == 2
    err = capsys.readouterr().err
    assert "holds another comparison" in err and "another --out" in err
    (out / "compare.json").unlink()  # past that: each run's own settings are checked
    assert main([*argv, "--set", "total_steps=200"]) == 2
    err = capsys.readouterr().err
    assert "trained with other settings (total_steps)" in err and "another --out" in err
    assert json.loads((run / "summary.json").read_text())["results"] == first  # untouched
    # as if killed before its first checkpoint: config.toml and a row, nothing else
    for path in [run / "summary.json", *(run / "checkpoints").glob("*.pt")]:
        path.unlink()
    assert main(argv) == 0
    again = json.loads((run / "summary.json").read_text())["results"]
    assert again["per_task"] == first["per_task"]  # started over: the same numbers


def _sweep(recipe: Path, out: Path) -> list[str]:
    """The `mtrl compare` command of the interruption tests: 2 variants x 2 seeds, two
    at a time, so two runs are queued while two train."""
    cmd = [sys.executable, "-m", "mtrl.cli", "compare", str(recipe), "--out", str(out)]
    return [*cmd, "--seeds", "2", "--jobs", "2", "--vary", "sac.balancing=none,pcgrad"]


@pytest.fixture(scope="module")
def long_recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    recipe = tmp_path_factory.mktemp("sweep") / "r.toml"
    recipe.write_text(derived(RECIPE, "total_steps=1200", "checkpoint_every=1200"))
    return recipe  # checkpoints only when stopped or done


@pytest.fixture(scope="module")
def uninterrupted(long_recipe: Path) -> dict[str, Any]:
    """The comparison that the interrupted ones must end up equal to."""
    out = long_recipe.parent / "uninterrupted"
    done = subprocess.run(_sweep(long_recipe, out), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "compare.json").read_text())  # type: ignore[no-any-return]


def _start(cmd: list[str], out: Path, first: str) -> subprocess.Popen[str]:
    """The sweep started in its own process group, once a run has written ``first``."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while not list(out.glob(f"*/seed_*/{first}")) and time.time() < deadline:
        time.sleep(0.05)
    return proc


def _continue(err: str) -> list[str]:
    """The command an interrupted compare printed to continue with, run as python -m."""
    line = err.strip().splitlines()[-1].strip()
    argv = shlex.split(line)
    assert argv[:2] == ["mtrl", "compare"], err
    return [sys.executable, "-m", "mtrl.cli", *argv[1:]]


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_ctrl_c_cancels_the_queued_runs_and_a_rerun_finishes_the_comparison(
    how: str, long_recipe: Path, uninterrupted: dict[str, Any], tmp_path: Path
) -> None:
    """Ctrl-C in a terminal reaches the whole process group; SIGTERM (`timeout`,
    `kill`) only compare, which passes the stop on: either way the running jobs
    checkpoint, the queued ones never start, compare exits 128 + the signal's number
    saying what became of each run and the command that continues; that command then
    finishes the comparison with the uninterrupted one's numbers."""
    out = tmp_path / "cmp"
    proc = _start(_sweep(long_recipe, out), out, "metrics.csv")
    time.sleep(1.0)
    if how == "ctrl-c":  # pressed twice: the second must not hang or cut a checkpoint
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    stopped = time.time()
    _, err = proc.communicate(timeout=120)
    assert time.time() - stopped < 30, err  # the runs save a checkpoint, no more
    sig = signal.SIGINT if how == "ctrl-c" else signal.SIGTERM
    assert proc.returncode == 128 + sig, err
    assert "queued runs cancelled" in err and "continue the comparison with" in err
    assert re.search(r"interrupted \([12], checkpointed", err), err
    assert "not started (2): balancing=none seed 1, balancing=pcgrad seed 1" in err
    started = list(out.glob("*/seed_*/config.toml"))
    assert 1 <= len(started) <= 2  # at most the two that were running
    assert not list(out.glob("*/seed_*/summary.json"))
    # the run that was training checkpointed (one still setting up may have none yet:
    # the rerun starts it over)
    assert any(list((c.parent / "checkpoints").glob("step_*.pt")) for c in started)
    done = subprocess.run(_continue(err), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert "resumed and finished in" in done.stderr
    doc = json.loads((out / "compare.json").read_text())
    assert doc["variants"] == uninterrupted["variants"]  # as if never interrupted


def test_a_job_a_worker_refused_after_a_stop_reads_as_an_interrupt() -> None:
    """Under load a worker can hear Ctrl-C before compare does and refuse the job queued
    next to it; compare must take that for the interrupt (exit 128 + SIGINT, runs
    reported) rather than a failed run (exit 1). Seen once in a loaded suite."""
    from concurrent.futures import Future

    from mtrl.pool_exec import NotStarted, _finished
    from mtrl.sweep_progress import SweepProgress

    refused: Future[tuple[dict[str, Any], float]] = Future()
    refused.set_exception(NotStarted())
    with pytest.raises(KeyboardInterrupt):
        _finished(refused, {}, SweepProgress([], print))


def test_kill_9_of_the_sweep_then_a_rerun_finishes_and_one_compare_per_out(
    long_recipe: Path, uninterrupted: dict[str, Any], tmp_path: Path
) -> None:
    """A hard kill (OOM killer, a node lost) of compare and its workers before any
    checkpoint leaves runs with a config and nothing else: the same command starts them
    over, with no directory to delete by hand, and ends with the uninterrupted
    comparison's numbers. Meanwhile a second compare into that --out is refused, naming
    the one that runs."""
    out = tmp_path / "cmp"
    cmd = _sweep(long_recipe, out)
    proc = _start(cmd, out, "config.toml")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert list(out.glob("*/seed_*/config.toml"))
    assert not list(out.glob("*/seed_*/checkpoints/step_*.pt"))
    rerun = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    lock, deadline = out / ".lock", time.time() + 120
    while time.time() < deadline and not (
        lock.is_file() and lock.read_text().startswith(f"{rerun.pid}:")
    ):
        time.sleep(0.05)  # until the rerun holds --out
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert second.returncode == 2, second.stderr
    assert f"being written by another process (pid {rerun.pid}: mtrl compare" in second.stderr
    assert "use another --out" in second.stderr
    doc = json.loads((out / "compare.json").read_text())
    assert doc["variants"] == uninterrupted["variants"]


def test_first_seed_runs_other_seeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--first-seed K: seeds K..K+N-1, for re-running a claim on seeds it was not made on."""
    recipe = tmp_path / "r.toml"
    recipe.write_text(derived(RECIPE, "total_steps=300", "eval_every=300"))
    out = tmp_path / "cmp"
    argv = ["compare", str(recipe), "--seeds", "1", "--first-seed", "7", "--out", str(out)]
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["seeds"] == [7]
    config = (out / "base" / "seed_7" / "config.toml").read_text()
    assert "seed = 7" in config


def test_bar_labels_show_every_key_and_value_a_line_each() -> None:
    from mtrl.compare import tick_label

    assert tick_label("updates_per_step|critics=4.0|10") == "updates_per_step=4.0\ncritics=10"
    assert tick_label("arch=shared,balancing=pcgrad") == "arch=shared\nbalancing=pcgrad"
    assert tick_label("base") == "base"
    long = tick_label("sac.actor.arch+sac.critic.arch=multihead", width=24)
    assert all(len(line) <= 24 for line in long.splitlines()) and "multihead" in long
