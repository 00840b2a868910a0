"""`mtrl bench meta-rl`: meta-RL sampling (every task of a meta-batch stepped together,
one episode each) against Meta-World's own ML vector env, in env steps per second.

Both step the same pre-drawn random actions for one episode of ``steps`` steps on
``meta_batch`` training tasks of an ML benchmark; the order of the two rotates between
repeats and the median of the repeats is reported. With ``workers`` > 1 mtrl's sampler
steps its envs in that many processes, Meta-World's vector env is its async one (a
process per env), and the sampler in one process is timed too, for the workers' gain.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch

from mtrl.errors import MtrlError
from mtrl.meta.rl_sampler import EpisodeSampler, meta_family


@dataclass(frozen=True)
class MetaRLBenchResult:
    env: str
    meta_batch: int
    steps: int
    repeats: int
    workers: int = 0
    steps_per_s: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.steps_per_s["mtrl"] / self.steps_per_s["metaworld"]


def _metaworld_vec(env: str, meta_batch: int, seed: int, strategy: str) -> gym.vector.VectorEnv:
    import metaworld  # noqa: F401  (registers Meta-World's gymnasium ids)

    kind, _, name = env.partition(":")
    if kind == "ML1":
        return gym.make_vec("Meta-World/ML1-train", env_name=name, meta_batch_size=meta_batch,
                            vector_strategy=strategy, seed=seed)  # fmt: skip
    return gym.make_vec(f"Meta-World/{kind}-train", meta_batch_size=meta_batch,
                        vector_strategy=strategy, seed=seed)  # fmt: skip


def bench_meta_rl(
    env: str = "ML1:reach-v3", meta_batch: int = 20, steps: int = 500, repeats: int = 3,
    seed: int = 0, workers: int = 0,
) -> MetaRLBenchResult:  # fmt: skip
    """Env steps per second of mtrl's meta-RL sampler and Meta-World's ML vector env."""
    if not env.startswith("ML"):
        raise MtrlError(f"--env {env!r}: the meta-RL benchmark runs Meta-World's ML1:<env> or ML10")
    classes = 1 if env.startswith("ML1:") else 10 if env == "ML10" else 45
    per_class = meta_batch // classes
    if meta_batch % classes or per_class == 0 or 50 % per_class:
        raise MtrlError(
            f"--meta-batch {meta_batch}: Meta-World's {env} vector env splits each class's 50 "
            f"goals evenly, so it needs {classes} x a divisor of 50 (e.g. {classes * 10})"
        )
    family = meta_family(env, "the benchmark")
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, size=(steps, meta_batch, 4)).astype(np.float32)
    tasks = family.sample_tasks(meta_batch, rng)

    def timer(sampler: EpisodeSampler) -> Any:
        sampler.set_tasks(tasks)

        def run() -> float:
            step = iter(actions)
            t0 = time.perf_counter()
            ep = sampler.sample(lambda obs: torch.from_numpy(next(step)).view(meta_batch, 1, 4))
            return float(ep.masks.sum()) / (time.perf_counter() - t0)

        return run

    samplers = [EpisodeSampler(family, meta_batch, 1, steps, seed, workers)]
    runs: dict[str, Any] = {"mtrl": timer(samplers[0])}
    vec = _metaworld_vec(env, meta_batch, seed, "async" if workers > 1 else "sync")
    cast(Any, vec).call("toggle_sample_tasks_on_reset", True)  # each reset: a task
    vec.reset(seed=seed)

    def run_metaworld() -> float:
        vec.reset()
        t0 = time.perf_counter()
        for a in actions:
            vec.step(a)
        return steps * vec.num_envs / (time.perf_counter() - t0)

    runs["metaworld"] = run_metaworld
    if workers > 1:  # what the workers gain over the same sampler in one process
        samplers.append(EpisodeSampler(family, meta_batch, 1, steps, seed))
        runs["mtrl_one_process"] = timer(samplers[1])
    rates: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            rates[name].append(runs[name]())
    for sampler in samplers:
        sampler.close()
    vec.close()
    medians = {name: statistics.median(v) for name, v in rates.items()}
    return MetaRLBenchResult(env, meta_batch, steps, repeats, workers, medians)
