from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mtrl.config import read_toml
from mtrl.envs.rollout_run import RolloutConfig
from mtrl.errors import RunDirError
from mtrl.runs import RunDir
from mtrl.seeding import derive_seeds, seed_everything


def test_run_dir_layout_summary_and_no_overwrite(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", RolloutConfig(seed=3))
    assert read_toml(run.config_path)["seed"] == 3
    assert run.checkpoints.is_dir() and run.plots.is_dir()
    run.write_summary(seed=3, results={"x": 1.5})
    doc = json.loads(run.summary_path.read_text())
    assert doc["seed"] == 3 and doc["results"] == {"x": 1.5}
    for pkg in ("torch", "gymnasium", "mujoco", "metaworld"):
        assert doc["versions"][pkg] not in ("", "absent")
    with pytest.raises(RunDirError, match="already holds a run"):
        RunDir.create(tmp_path / "run", RolloutConfig())
    assert read_toml(run.config_path)["seed"] == 3  # untouched


def test_metrics_columns_grow_without_losing_rows(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, RolloutConfig())
    run.log_metrics({"step": 1, "loss": 0.5})
    run.log_metrics({"step": 2, "loss": 0.25, "success": 1.0})
    run.log_metrics({"step": 3, "loss": 0.125})
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["success"] == "" and rows[1]["success"] == "1.0"


def test_checkpoints_round_trip_and_missing_checkpoint_is_clear(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, RolloutConfig())
    with pytest.raises(RunDirError, match="no checkpoint"):
        run.load_checkpoint()
    run.save_checkpoint({"w": torch.ones(2)}, step=5)
    run.save_checkpoint({"w": torch.zeros(2)}, step=12)
    assert run.latest_checkpoint().name == "step_12.pt"
    assert torch.equal(run.load_checkpoint()["w"], torch.zeros(2))
    with pytest.raises(RunDirError, match="not a run directory"):
        RunDir.open(tmp_path / "elsewhere")
    assert RunDir.open(tmp_path).path == tmp_path


def test_seed_everything_reproduces_numbers() -> None:
    a = seed_everything(5)
    x = (a.random(), torch.rand(1).item())
    b = seed_everything(5)
    assert (b.random(), torch.rand(1).item()) == x
    assert derive_seeds(1, 3) == derive_seeds(1, 3) and len(set(derive_seeds(1, 3))) == 3
    with pytest.raises(ValueError, match="non-negative int"):
        seed_everything(-1)
