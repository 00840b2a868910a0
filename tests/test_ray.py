"""`mtrl compare --executor ray` on a real local Ray cluster (no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtrl.cli import main
from mtrl.ray_exec import job_resources
from mtrl.recipes import parse_recipe

ray = pytest.importorskip("ray")

RECIPE = """
kind = "mtsac"
threads = 1
total_steps = 300
learning_starts = 100
batch_size = 32
eval_every = 300
eval_episodes = 1
checkpoint_every = 300
[env]
name = "navigation2d"
num_tasks = 2
[sac.actor]
hidden = [16]
[sac.critic]
hidden = [16]
"""


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
        assert "done (ray)" in capsys.readouterr().err
        local = json.loads((tmp_path / "local" / "compare.json").read_text())
        remote = json.loads((tmp_path / "ray" / "compare.json").read_text())
        assert local["variants"] == remote["variants"]  # same seeds, same numbers
        assert (tmp_path / "ray" / "arch=multihead" / "seed_0" / "summary.json").is_file()
        assert main([*argv, "--executor", "ray"]) == 0  # finished runs are reused
        assert capsys.readouterr().err.count("reusing") == 2
    finally:
        ray.shutdown()
