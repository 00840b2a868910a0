"""Navigation2D: the point-mass goal-reaching family of the MAML paper."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mtrl.tasks import ParametricFamily, ParamValue, Task, TaskEnvMixin

MAX_STEP = 0.1
GOAL_RADIUS = 0.01
SUCCESS_RADIUS = 0.05  # info["success"]: within reach of the goal (Meta-World style)
VIEW = 0.6  # rgb_array frames show [-VIEW, VIEW]^2 (goals lie in [-0.5, 0.5]^2)


def sample_goal(rng: np.random.Generator) -> dict[str, Any]:
    """Goal uniform in [-0.5, 0.5]^2."""
    return {"goal": rng.uniform(-0.5, 0.5, size=2)}


def _disk(frame: np.ndarray, row: float, col: float, radius: float, color: tuple[int, ...]) -> None:
    """Paint a disk (pixel units) onto ``frame`` in place, touching only its box."""
    size = frame.shape[0]
    r0, r1 = max(int(row - radius), 0), min(int(row + radius) + 2, size)
    c0, c1 = max(int(col - radius), 0), min(int(col + radius) + 2, size)
    if r0 >= r1 or c0 >= c1:
        return
    rr, cc = np.mgrid[r0:r1, c0:c1]
    inside = (rr + 0.5 - row) ** 2 + (cc + 0.5 - col) ** 2 < radius**2
    frame[r0:r1, c0:c1][inside] = color


def draw_frame(
    path: np.ndarray, goal: np.ndarray, size: int = 256, view: float = VIEW
) -> np.ndarray:
    """An RGB frame (size x size x 3, uint8): the goal's success disk in green, the
    path so far in grey, the point in blue; y points up."""
    frame = np.full((size, size, 3), 255, dtype=np.uint8)
    scale = size / (2 * view)  # pixels per unit

    def px(p: np.ndarray) -> tuple[float, float]:
        return (view - float(p[1])) * scale, (float(p[0]) + view) * scale  # row, col

    mid = size // 2
    frame[mid, :] = frame[:, mid] = (220, 220, 220)  # axes
    _disk(frame, *px(goal), SUCCESS_RADIUS * scale, (60, 170, 60))
    for p in path[:-1]:
        _disk(frame, *px(p), 1.5, (150, 150, 150))
    _disk(frame, *px(path[-1]), 4.0, (40, 80, 200))
    return frame


class Navigation2DEnv(TaskEnvMixin, gym.Env[np.ndarray, np.ndarray]):
    """A point starts at the origin and moves by the action (clipped to ±0.1 per axis).

    Reward is the negative Euclidean distance to the goal after the move; the episode
    terminates within 0.01 of the goal; ``info["success"]`` is 1 within 0.05 (an
    episode succeeds if it ever is, as in Meta-World). The horizon (100) is the
    registered time limit.
    """

    family_name = "navigation2d"
    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012

    def __init__(self, task: Task | None = None, render_mode: str | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"Navigation2D renders 'rgb_array' only, got {render_mode!r}")
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-MAX_STEP, MAX_STEP, shape=(2,), dtype=np.float32)
        self._pos = np.zeros(2, dtype=np.float64)
        self._goal = np.zeros(2, dtype=np.float64)
        self._path: list[np.ndarray] = [self._pos]
        self.set_task(task or NAVIGATION2D.default_task())

    def _apply_task(self, params: dict[str, ParamValue]) -> None:
        self._goal = np.asarray(params["goal"], dtype=np.float64)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._pos = np.zeros(2, dtype=np.float64)
        self._path = [self._pos]
        return self._pos.astype(np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        step = np.clip(np.asarray(action, dtype=np.float64), -MAX_STEP, MAX_STEP)
        if step.shape != (2,):
            raise ValueError(f"Navigation2D takes actions of shape (2,), got {step.shape}")
        self._pos = self._pos + step
        if self.render_mode is not None:
            self._path.append(self._pos)
        dist = float(np.linalg.norm(self._pos - self._goal))
        terminated = dist < GOAL_RADIUS
        info = {"distance": dist, "success": float(dist < SUCCESS_RADIUS)}
        return self._pos.astype(np.float32), -dist, terminated, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("Navigation2D.render() without render_mode='rgb_array'")
            return None
        return draw_frame(np.asarray(self._path), self._goal)


NAVIGATION2D = ParametricFamily(
    name="navigation2d",
    env_id="mtrl/Navigation2D-v0",
    description="Point mass reaching a goal in [-0.5,0.5]^2, reward -distance, horizon 100",
    sampler=sample_goal,
    default={"goal": (0.25, 0.25)},
)
