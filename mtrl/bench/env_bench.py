"""`mtrl bench env`: mtrl's Meta-World vector env against Meta-World's own ``make_vec``.

Every contender runs the same pre-drawn random actions for the same number of steps;
the order of the contenders rotates between repeats so that machine noise hits all
alike, and the median of the repeats is reported. With ``async``, mtrl's sync env is
timed in the same run too (the worker processes' speed-up over stepping in one
process), and so are mtrl's workers holding contiguous slices instead of groups
balanced by measured step cost.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from mtrl.envs.vector import MultiTaskEnvConfig, Vectorization, make_multitask_env

Suite = Literal["MT10", "MT50"]


@dataclass(frozen=True)
class EnvBenchResult:
    suite: str
    vectorization: str
    num_envs: int
    steps: int
    repeats: int
    workers: int | None  # mtrl's async worker processes
    steps_per_s: dict[str, float] = field(default_factory=dict)  # contender -> env steps/s
    groups: list[list[int]] | None = None  # sub-envs per worker (async, balanced)

    @property
    def mtrl_steps_per_s(self) -> float:
        return self.steps_per_s["mtrl"]

    @property
    def metaworld_steps_per_s(self) -> float:
        return self.steps_per_s["metaworld"]

    @property
    def ratio(self) -> float:
        return self.mtrl_steps_per_s / self.metaworld_steps_per_s

    @property
    def overhead(self) -> float:
        """Fraction of Meta-World's throughput lost in mtrl's layer (negative: faster)."""
        return 1.0 - self.ratio

    @property
    def ratio_to_sync(self) -> float | None:
        """mtrl async over mtrl sync (None unless both were timed)."""
        sync = self.steps_per_s.get("mtrl_sync")
        return None if sync is None else self.mtrl_steps_per_s / sync


def _time_steps(env: gym.vector.VectorEnv, actions: np.ndarray) -> float:
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    return time.perf_counter() - start


def bench_env(
    steps: int = 1000,
    repeats: int = 5,
    vectorization: Vectorization = "sync",
    seed: int = 0,
    suite: Suite = "MT10",
    workers: int | None = None,
) -> EnvBenchResult:
    """Env steps per second (summed over the sub-envs) of the Meta-World vector envs."""
    import metaworld  # noqa: F401  (registers Meta-World's gymnasium ids)

    envs: dict[str, Any] = {
        "mtrl": make_multitask_env(
            MultiTaskEnvConfig(name=suite, vectorization=vectorization, workers=workers)
        ),
        "metaworld": gym.make_vec(f"Meta-World/{suite}", vector_strategy=vectorization, seed=seed),
    }
    if vectorization == "async":
        envs["mtrl_sync"] = make_multitask_env(MultiTaskEnvConfig(name=suite))
        contiguous = MultiTaskEnvConfig(
            name=suite, vectorization="async", workers=workers, balance_workers=False
        )
        envs["mtrl_contiguous"] = make_multitask_env(contiguous)
    num_envs = envs["mtrl"].num_envs
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, size=(steps, num_envs, 4)).astype(np.float32)
    times: dict[str, list[float]] = {name: [] for name in envs}
    for env in envs.values():
        env.reset(seed=seed)
        _time_steps(env, actions[:50])  # warm-up
    names = list(envs)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(_time_steps(envs[name], actions))
    used = getattr(envs["mtrl"].env, "num_workers", None)
    groups = getattr(envs["mtrl"].env, "groups", None)
    for env in envs.values():
        env.close()
    n = steps * num_envs
    return EnvBenchResult(
        suite=suite,
        vectorization=vectorization,
        num_envs=num_envs,
        steps=steps,
        repeats=repeats,
        workers=used,
        groups=groups,
        steps_per_s={name: n / statistics.median(t) for name, t in times.items()},
    )
