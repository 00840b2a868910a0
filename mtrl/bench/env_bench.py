"""`mtrl bench env`: mtrl's MT10 vector env against Meta-World's own ``make_vec``.

Both run the same pre-drawn random actions for the same number of steps; timings
alternate between the two so that machine noise hits both alike, and the median of
the repeats is reported.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from mtrl.envs.vector import MultiTaskEnvConfig, Vectorization, make_multitask_env


@dataclass(frozen=True)
class EnvBenchResult:
    vectorization: str
    num_envs: int
    steps: int
    repeats: int
    mtrl_steps_per_s: float
    metaworld_steps_per_s: float

    @property
    def ratio(self) -> float:
        return self.mtrl_steps_per_s / self.metaworld_steps_per_s

    @property
    def overhead(self) -> float:
        """Fraction of Meta-World's throughput lost in mtrl's layer (negative: faster)."""
        return 1.0 - self.ratio


def _time_steps(env: gym.vector.VectorEnv, actions: np.ndarray) -> float:
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    return time.perf_counter() - start


def bench_env(
    steps: int = 1000, repeats: int = 5, vectorization: Vectorization = "sync", seed: int = 0
) -> EnvBenchResult:
    """Env steps per second (summed over the 10 sub-envs) of both MT10 vector envs."""
    import metaworld  # noqa: F401  (registers Meta-World's gymnasium ids)

    ours = make_multitask_env(MultiTaskEnvConfig(name="MT10", vectorization=vectorization))
    theirs: Any = gym.make_vec("Meta-World/MT10", vector_strategy=vectorization, seed=seed)
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, size=(steps, ours.num_envs, 4)).astype(np.float32)
    ours.reset(seed=seed)
    theirs.reset(seed=seed)
    _time_steps(ours, actions[:50])  # warm-up
    _time_steps(theirs, actions[:50])
    t_ours: list[float] = []
    t_theirs: list[float] = []
    for r in range(repeats):
        pair = [(ours, t_ours), (theirs, t_theirs)]
        for env, sink in pair if r % 2 == 0 else pair[::-1]:
            sink.append(_time_steps(env, actions))
    ours.close()
    theirs.close()
    n = steps * 10
    return EnvBenchResult(
        vectorization=vectorization,
        num_envs=10,
        steps=steps,
        repeats=repeats,
        mtrl_steps_per_s=n / statistics.median(t_ours),
        metaworld_steps_per_s=n / statistics.median(t_theirs),
    )
