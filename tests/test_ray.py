"""`mtrl compare --executor ray` on a real local Ray cluster (no mocks)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from recipes import MTSAC, derived

from mtrl.cli import main
from mtrl.jobs import Job, RecipeSource
from mtrl.ray_exec import _slots, job_resources
from mtrl.recipes import parse_recipe

ray = pytest.importorskip("ray")

RECIPE = derived(
    MTSAC,
    "total_steps=300",
    "learning_starts=100",
    "eval_every=300",
    "checkpoint_every=300",
    'env.name="navigation2d"',
)


def test_resources_follow_the_recipe() -> None:
    _, cfg = parse_recipe({"kind": "mtsac", "threads": 3, "device": "cuda"}, "r")
    assert job_resources(cfg) == {"num_cpus": 3.0, "num_gpus": 1.0}
    _, cfg = parse_recipe({"kind": "sine"}, "r")
    assert job_resources(cfg)["num_cpus"] == 1.0


def test_ray_executor_gives_the_local_executors_comparison(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    vary = ["--vary", "sac.actor.arch+sac.critic.arch=shared,multihead", "--seeds", "1"]
    assert main(["compare", str(recipe), *vary, "--out", str(tmp_path / "local")]) == 0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        argv = ["compare", str(recipe), *vary, "--out", str(tmp_path / "ray")]
        assert main([*argv, "--executor", "ray"]) == 0
        assert "[2/2] arch=multihead seed 0: finished in" in capsys.readouterr().err
        local = json.loads((tmp_path / "local" / "compare.json").read_text())
        remote = json.loads((tmp_path / "ray" / "compare.json").read_text())
        assert local["variants"] == remote["variants"]  # same seeds, same numbers
        assert (tmp_path / "ray" / "arch=multihead" / "seed_0" / "summary.json").is_file()
        assert main([*argv, "--executor", "ray"]) == 0  # finished runs are reused
        assert capsys.readouterr().err.count("reusing") == 2
        source = RecipeSource.read(recipe)  # the ETA's runs at once: CPUs over each run's
        assert _slots(ray, source, [Job("v", 0, (), tmp_path, "train")]) == 2
        assert _slots(ray, source, [Job("v", 0, ("threads=2",), tmp_path, "train")]) == 1
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def long_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], dict]:
    """A 2 x 2 sweep long enough to stop, and its uninterrupted local comparison."""
    root = tmp_path_factory.mktemp("long_sweep")
    recipe = root / "r.toml"
    recipe.write_text(derived(RECIPE, "total_steps=1000"))
    vary = ["--seeds", "2", "--vary", "sac.balancing=none,pcgrad"]
    assert main(["compare", str(recipe), *vary, "--out", str(root / "local")]) == 0
    return recipe, vary, json.loads((root / "local" / "compare.json").read_text())


@pytest.mark.parametrize(
    "sig, group", [(signal.SIGINT, True), (signal.SIGTERM, False)], ids=["ctrl-c", "kill"]
)
def test_a_stopped_ray_sweep_checkpoints_and_the_same_command_finishes_it(
    sig: signal.Signals, group: bool, long_sweep: tuple[Path, list[str], dict], tmp_path: Path
) -> None:
    """Ctrl-C (to compare's process group; Ray's workers live in their own) or SIGTERM
    to compare alone (`kill PID`; Ray's driver would otherwise take it with a handler of
    its own) cancels the queued Ray tasks and interrupts the running ones, which
    checkpoint; the command it prints continues the sweep to the numbers an
    uninterrupted local sweep gives."""
    recipe, vary, local = long_sweep
    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", "mtrl.cli", "compare", str(recipe), *vary, "--out", str(out)]
    cmd += ["--executor", "ray"]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = t0 + 180
    while not list(out.glob("*/seed_*/metrics.csv")) and time.time() < deadline:
        time.sleep(0.05)
    seen = time.time() - t0
    time.sleep(1.0)
    (os.killpg if group else os.kill)(proc.pid, sig)
    sent = time.time() - t0
    _, err = proc.communicate(timeout=180)
    end = time.time() - t0
    when = f"first metrics at {seen:.1f} s, {sig.name} at {sent:.1f} s, exit at {end:.1f} s"
    assert proc.returncode == 128 + sig, f"{when}\n{err}"
    assert "interrupted (" in err and "checkpointed; resumed next time" in err
    assert "not started (2)" in err
    assert any(out.glob("*/seed_*/checkpoints/step_*.pt"))
    again = shlex.split(err.strip().splitlines()[-1])
    done = subprocess.run(
        [sys.executable, "-m", "mtrl.cli", *again[1:]],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "resumed and finished in" in done.stderr
    assert json.loads((out / "compare.json").read_text())["variants"] == local["variants"]
