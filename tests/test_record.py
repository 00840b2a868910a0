"""`mtrl record`: one MP4 per task, rendered offscreen (EGL for MuJoCo/Meta-World)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
from recipes import MTPPO, MTSAC, derived

from mtrl.cli import main
from mtrl.recipes import parse_recipe
from mtrl.record import video_name


def _recipe(name: str, horizon: int) -> str:
    """The shared MT-SAC recipe cut to 200 steps on ``name`` (CartPole's actions are
    Discrete: the shared MT-PPO recipe)."""
    env = (f'env.name="{name}"', "env.num_tasks=2", f"env.max_episode_steps={horizon}")
    if name == "cartpole":
        return derived(MTPPO, "total_steps=128", "~reward_norm", "~env.envs_per_task", *env)
    return derived(MTSAC, "total_steps=200", "learning_starts=100", *env)


def _train(tmp_path: Path, name: str, horizon: int) -> Path:
    kind, cfg = parse_recipe(tomllib.loads(_recipe(name, horizon)), name)
    kind.train(cfg, tmp_path / "run")
    return tmp_path / "run"


def _frames(path: Path) -> list[np.ndarray]:
    reader = imageio.get_reader(path)
    frames = [np.asarray(f) for f in reader]
    reader.close()
    return frames


def test_video_names_are_sorted_and_file_safe() -> None:
    assert video_name(3, "push-v3") == "03_push-v3.mp4"
    assert video_name(12, "navigation2d[goal=(0.1,-0.2)]") == "12_navigation2d_goal_0.1_-0.2.mp4"


def test_record_writes_every_episode_of_every_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _train(tmp_path, "navigation2d", 30)
    assert main(["record", str(run), "--episodes", "2"]) == 0
    videos = sorted((run / "videos").glob("*.mp4"))
    assert [v.name[:3] for v in videos] == ["00_", "01_"]
    assert f"wrote {videos[0]}" in capsys.readouterr().out
    frames = _frames(videos[0])
    assert len(frames) == 2 * (30 + 1)  # each episode: its first frame, then one per step
    assert frames[0].shape == (256, 256, 3)


@pytest.mark.parametrize("name", ["cartpole", "pendulum", "halfcheetah-vel", "MT10"])
def test_every_family_renders_offscreen(tmp_path: Path, name: str) -> None:
    """Classic control through pygame, MuJoCo and Meta-World through EGL: a video per
    task of rendered scenes, and no SDL complaint about a missing display."""
    run = _train(tmp_path, name, 8)
    # a fresh process: MuJoCo picks its GL backend when first imported
    proc = subprocess.run(
        [sys.executable, "-m", "mtrl.cli", "record", str(run)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "XDG_RUNTIME_DIR" not in proc.stderr
    videos = sorted((run / "videos").glob("*.mp4"))
    assert len(videos) == 2
    frames = _frames(videos[1])
    assert len(frames) >= 2 and frames[0].std() > 5  # a rendered scene, not a blank frame
    assert len(frames) == 9 or name == "cartpole"  # CartPole's episode may end early


def test_record_refuses_runs_without_a_policy(tmp_path: Path) -> None:
    kind, cfg = parse_recipe(
        {"kind": "sine", "iterations": 2, "meta_batch": 2, "eval": {"tasks": 2}}, "sine"
    )
    kind.train(cfg, tmp_path / "sine")
    assert main(["record", str(tmp_path / "sine")]) == 2
    assert main(["record", str(tmp_path / "sine"), "--episodes", "0"]) == 2
