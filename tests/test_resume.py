"""Runs you can trust: a run interrupted anywhere (Ctrl-C at a random moment, kill -9
between checkpoints) and resumed writes the same metrics.csv and summary.json as the
uninterrupted run; one writer per run directory; corrupt checkpoints fall back."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from golden import TIMING, is_exact, portable_env, record_dir, results
from recipes import CONTINUAL as CONTINUAL_RECIPE
from recipes import (
    CURRICULUM,
    DEMOS,
    LEARNER,
    MAML_RL,
    MIXTURE,
    MTPPO,
    MTSAC,
    PEARL,
    RESUMED_GOLDEN,
    RL2,
    SB3,
    SINE,
    collect_datasets,
)

# test_continual's two-goal recipe, longer, checkpointed mid-task
CONTINUAL = (
    CONTINUAL_RECIPE.replace("steps_per_task = 400", "steps_per_task = 600")
    .replace("eval_every = 200", "eval_every = 200\ncheckpoint_every = 500\nseed = 1")
    .replace("log_every = 200", "log_every = 100")
)

RECIPES = {
    "mtsac": MTSAC,
    "demos": DEMOS,
    "learner": LEARNER,
    "curriculum": CURRICULUM,
    "mixture": MIXTURE,
    "continual": CONTINUAL,
    "mtppo": MTPPO,
    "sine": SINE,
    "sb3": SB3,
    "maml_rl": MAML_RL,
    "rl2": RL2,
    "pearl": PEARL,
}
# SIGTERM (Slurm, Kubernetes, `timeout`) anywhere in a run of every kind (mtsac's has
# its own test below), Ctrl-C (SIGINT) in MT-SAC with each kind of component; both
# take the same path through the loop's guard
SIGTERM_KINDS = ("continual", "mtppo", "sine", "sb3", "maml_rl", "pearl")
STOPS = [(name, signal.SIGINT) for name in RECIPES if name not in SIGTERM_KINDS]
STOPS += [(name, signal.SIGTERM) for name in SIGTERM_KINDS]
# the uninterrupted runs of these recipes are golden runs (tests/golden/)
GOLDEN_OF = RESUMED_GOLDEN


def _mtrl(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mtrl.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=portable_env(),  # compared with golden runs (tests/golden.py)
    )


def _train(recipe: Path, run: Path, *extra: str) -> None:
    proc = _mtrl("train", str(recipe), "--run-dir", str(run), *extra)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def _summary(run: Path) -> dict[str, object]:
    """A run's results (timing dropped); a golden run keeps them in results.json."""
    golden = run / "results.json"
    return json.loads(golden.read_text()) if golden.is_file() else results(run)  # type: ignore[no-any-return]


def _wait_for(predicate: object, timeout: float = 300.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("the run did not get there in time")


def _metric_rows(run: Path) -> int:
    path = run / "metrics.csv"
    return max(0, len(path.read_text().splitlines()) - 1) if path.exists() else 0


def _kill_9_then_resume(recipe: Path, run: Path, rows_before_kill: int) -> None:
    """Train, kill -9 once a checkpoint exists and rows were logged after it, resume."""
    proc = _mtrl("train", str(recipe), "--run-dir", str(run))
    _wait_for(
        lambda: (
            any((run / "checkpoints").glob("step_*.pt")) and _metric_rows(run) >= rows_before_kill
        )
    )
    proc.kill()
    proc.communicate(timeout=60)
    proc = _mtrl("train", "--resume", str(run))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return collect_datasets(tmp_path_factory.mktemp("datasets"))


def _recipe_text(name: str, datasets: Path) -> str:
    return RECIPES[name].replace("@DATASETS@", str(datasets))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, datasets: Path) -> dict[str, Path]:
    """The uninterrupted run of each recipe: its golden run's record where this machine
    reproduces it bit for bit (tests/golden.py), else trained here."""
    root = tmp_path_factory.mktemp("reference")
    golden = {name: record_dir(g) for name, g in GOLDEN_OF.items()}
    out = {name: rec for name, rec in golden.items() if rec is not None and is_exact(rec)}
    for name in RECIPES.keys() - out.keys():
        recipe = root / f"{name}.toml"
        recipe.write_text(_recipe_text(name, datasets))
        _train(recipe, root / name)
        out[name] = root / name
    return out


@pytest.mark.parametrize(("name", "sig"), STOPS, ids=[f"{n}-{s.name}" for n, s in STOPS])
def test_ctrl_c_or_sigterm_anywhere_then_resume_equals_the_uninterrupted_run(
    name: str, sig: signal.Signals, reference: dict[str, Path], datasets: Path, tmp_path: Path
) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(_recipe_text(name, datasets))
    run = tmp_path / "run"
    proc = _mtrl("train", str(recipe), "--run-dir", str(run))
    _wait_for(lambda: _metric_rows(run) >= 2)
    time.sleep(random.Random().uniform(0.0, 1.5))  # a random moment of the run
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    if proc.returncode != 0:  # else it ended before the signal: an uninterrupted run
        assert proc.returncode == 128 + sig, err.decode()
        assert "resume with" in err.decode()
        proc = _mtrl("train", "--resume", str(run))
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
    assert _rows(run) == _rows(reference[name])
    assert _summary(run) == _summary(reference[name])


def test_sigterm_checkpoints_then_resume_equals_the_uninterrupted_run(
    reference: dict[str, Path], tmp_path: Path
) -> None:
    """What Slurm, Kubernetes and `timeout` send (SIGHUP, a closed terminal, takes the
    same path: test_runs): the run checkpoints at its next whole state and exits 128 +
    the signal's number, saying how to resume; the resume says where it continues, and
    a finished run's resume says it is done."""
    sig = signal.SIGTERM
    recipe = tmp_path / "r.toml"
    recipe.write_text(MTSAC)
    run = tmp_path / "run"
    proc = _mtrl("train", str(recipe), "--run-dir", str(run))
    _wait_for(lambda: _metric_rows(run) >= 2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + sig, err.decode()
    assert f"interrupted ({sig.name}); resume with: mtrl train --resume" in err.decode()
    saved = max((run / "checkpoints").glob("step_*.pt"), key=lambda p: int(p.stem[5:]))
    proc = _mtrl("train", "--resume", str(run))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()
    assert f"resuming {run} from checkpoints/{saved.name}" in err.decode()
    assert _rows(run) == _rows(reference["mtsac"])
    proc = _mtrl("train", "--resume", str(run))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "is finished (summary.json)" in err.decode()
    assert json.loads(out)["steps"] == 1600


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 400 kB tmpfs (root only: skipped where mounting is not allowed)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk)]
    if subprocess.run(mount, capture_output=True, check=False).returncode != 0:
        pytest.skip("this machine does not let the tests mount a small tmpfs")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_says_free_space_and_resume_then_resume_is_exact(
    small_disk: Path, reference: dict[str, Path], tmp_path: Path
) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(MTSAC)
    run = small_disk / "run"
    proc = _mtrl("train", str(recipe), "--run-dir", str(run))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err.decode()
    assert "mtrl: error: no space left on the device" in err.decode()
    assert f"free space, then mtrl train --resume {run}" in err.decode()
    assert "Traceback" not in err.decode()
    remount = ["mount", "-o", "remount,size=8m", str(small_disk)]
    subprocess.run(remount, check=True)  # space freed
    proc = _mtrl("train", "--resume", str(run))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()
    assert _rows(run) == _rows(reference["mtsac"])
    assert _summary(run) == _summary(reference["mtsac"])


@pytest.mark.parametrize("name", ["mtsac", "continual", "mtppo", "sine"])
def test_kill_9_between_checkpoints_then_resume_has_no_duplicate_rows(
    name: str, reference: dict[str, Path], tmp_path: Path
) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPES[name])
    run = tmp_path / "run"
    _kill_9_then_resume(recipe, run, rows_before_kill=14)
    rows = _rows(run)
    key = "iteration" if name == "sine" else "step"
    steps = [(r[key], r.get("eval_return", "") == "") for r in rows]
    assert len(steps) == len(set(steps))  # no duplicated rows
    assert rows == _rows(reference[name])


def test_sb3_resume_keeps_one_row_per_step(tmp_path: Path) -> None:
    """Inside SB3 exactness is not promised (its rollout state and env are not in the
    checkpoint): after kill -9 and a resume, the rows after the checkpoint are rolled
    back and written once, on the same step grid, and the run reaches its budget."""
    recipe = tmp_path / "r.toml"
    recipe.write_text(SB3)
    run = tmp_path / "run"
    _kill_9_then_resume(recipe, run, rows_before_kill=12)
    rows = _rows(run)
    steps = [int(r["step"]) for r in rows if not r.get("eval_return")]
    assert steps == list(range(128, 6145, 128))  # once each, on the uninterrupted grid
    assert (run / "model.zip").is_file()


def test_init_from_starts_a_new_run_from_trained_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--init-from` copies the weights (not steps, optimiser or data); `--resume` with
    changed settings is refused pointing at it; a misfit or missing source is an error
    before any new run directory exists."""
    import torch

    from mtrl.cli import main
    from mtrl.runs import RunDir

    recipe = tmp_path / "r.toml"
    recipe.write_text(MTSAC.replace("total_steps = 1600", "total_steps = 400"))
    source = tmp_path / "source"
    assert main(["train", str(recipe), "--run-dir", str(source)]) == 0
    assert main(["train", "--resume", str(source), "--set", "sac.actor_lr=1e-4"]) == 2
    assert "--init-from" in capsys.readouterr().err
    new = tmp_path / "new"
    args = ["train", str(recipe), "--run-dir", str(new), "--init-from", str(source)]
    # no updates in the new run (learning_starts beyond its budget): weights stay copied
    assert main([*args, "--set", "learning_starts=1000", "--set", "sac.actor_lr=1e-4"]) == 0
    a = RunDir.open(source).load_checkpoint()["agent"]
    b = RunDir.open(new).load_checkpoint()["agent"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((new / "summary.json").read_text())["init_from"] == str(source)
    capsys.readouterr()
    wide = ["--set", "sac.actor.hidden=[32, 32]", "--run-dir", str(tmp_path / "wide")]
    assert main(["train", str(recipe), "--init-from", str(source), *wide]) == 2
    assert "do not fit" in capsys.readouterr().err
    assert not (tmp_path / "wide").exists()
    missing = ["--init-from", str(tmp_path / "nowhere"), "--run-dir", str(tmp_path / "x")]
    assert main(["train", str(recipe), *missing]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_a_device_this_machine_lacks_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from mtrl.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    recipe = tmp_path / "r.toml"
    recipe.write_text(MTSAC)
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--run-dir", str(run), "--set", 'device="cuda"']) == 2
    assert "device = 'cuda'" in capsys.readouterr().err and not run.exists()


def test_async_env_resume_keeps_one_row_per_step(tmp_path: Path) -> None:
    """Async sub-envs live in other processes, so their state is not in the checkpoint:
    a resumed run restarts them from a reset. Promised: no duplicated or missing rows,
    the same step grid, the full budget."""
    recipe = tmp_path / "r.toml"
    recipe.write_text(MTSAC.replace("num_tasks = 2", 'num_tasks = 2\nvectorization = "async"'))
    run = tmp_path / "run"
    _kill_9_then_resume(recipe, run, rows_before_kill=8)
    steps = [int(r["step"]) for r in _rows(run) if not r.get("eval_return")]
    assert steps == list(range(100, 1601, 100))


def test_a_run_sampling_in_worker_processes_stopped_by_ctrl_c_resumes_to_the_golden_run(
    reference: dict[str, Path], tmp_path: Path
) -> None:
    """`workers = 2`: the envs step in two processes. Ctrl-C reaches the whole process
    group as a terminal sends it; the workers leave it to the run, which checkpoints
    (their envs' RNGs included) and exits; the resumed run equals the golden run that
    sampled in one process."""
    recipe = tmp_path / "r.toml"
    recipe.write_text(RL2.replace('env = "navigation2d"', 'env = "navigation2d"\nworkers = 2'))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "mtrl.cli", "train", str(recipe), "--run-dir", str(run)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, start_new_session=True, env=portable_env())
    _wait_for(lambda: _metric_rows(run) >= 6)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGINT, err.decode()
    proc = _mtrl("train", "--resume", str(run))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()
    assert _rows(run) == _rows(reference["rl2"])
    assert _summary(run) == _summary(reference["rl2"])
