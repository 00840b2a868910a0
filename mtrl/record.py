"""`mtrl record`: an MP4 per task of a trained policy, rendered offscreen.

MuJoCo and Meta-World render through EGL (Mesa's software renderer on a machine
without a GPU or display) unless ``MUJOCO_GL`` says otherwise; classic control and
Navigation2D draw their own ``rgb_array`` frames (classic control through pygame).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from mtrl.errors import MtrlError


def headless_gl() -> None:
    """Pick EGL for MuJoCo when no display is set (call before mujoco is imported)."""
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


def video_name(task_id: int, label: str) -> str:
    """``03_push-v3.mp4``: the task id first (sorted), the label made file-safe (letters,
    digits, ``.``, ``-``; anything else one ``_``)."""
    safe = re.sub(r"[^A-Za-z0-9.-]+", "_", label).strip("_")[:60]
    return f"{task_id:02d}_{safe}.mp4"


def record(
    run_dir: str | Path,
    episodes: int = 1,
    out_dir: str | Path | None = None,
    seed: int = 0,
    deterministic: bool = True,
    fps: int | None = None,
) -> list[Path]:
    """Roll out the run's policy for ``episodes`` episodes of every task and write one
    MP4 per task (``<run>/videos`` unless ``out_dir``); returns the paths."""
    if episodes < 1:
        raise MtrlError(f"--episodes must be >= 1, got {episodes}")
    headless_gl()
    import imageio.v2 as imageio

    from mtrl.envs.vector import MultiTaskEnvConfig, eval_env_config, make_multitask_env
    from mtrl.loading import load

    trained = load(run_dir)
    if not isinstance(trained.env_config, MultiTaskEnvConfig):
        raise MtrlError(f"mtrl record needs a multi-task policy run; {run_dir} is {trained.kind!r}")
    # next-step autoreset: the frame after an episode's last step still shows its end
    cfg = dataclasses.replace(
        eval_env_config(trained.env_config), render_mode="rgb_array", autoreset_mode="next_step"
    )
    out = Path(out_dir) if out_dir is not None else trained.run_dir / "videos"
    out.mkdir(parents=True, exist_ok=True)
    env = make_multitask_env(cfg)
    writers: list[Any] = []
    paths = [out / video_name(t, task.label) for t, task in enumerate(env.tasks)]
    rate = fps or int(env.unwrapped.metadata.get("render_fps") or 30)
    try:
        writers = [
            imageio.get_writer(p, fps=rate, codec="libx264", macro_block_size=2) for p in paths
        ]
        obs, _ = env.reset(seed=seed)
        done = np.zeros(env.num_envs, dtype=np.int64)
        _write_frames(env, writers, done, episodes)
        while (done < episodes).any():
            action = trained.act(obs["observation"], obs["task_id"], deterministic)
            obs, _, term, trunc, _ = env.step(action)
            _write_frames(env, writers, done, episodes)
            done += np.logical_or(term, trunc)
    finally:
        for w in writers:
            w.close()
        env.close()
    return paths


def _write_frames(env: Any, writers: list[Any], done: np.ndarray, episodes: int) -> None:
    for i, frame in enumerate(env.call("render")):
        if done[i] < episodes and frame is not None:
            writers[i].append_data(np.asarray(frame, dtype=np.uint8))
