"""One run of a sweep (a variant at a seed) and how a worker trains it: shared by
`mtrl compare`'s local process pool and its Ray executor."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtrl.errors import DiskFullError, disk_full


@dataclass(frozen=True)
class Job:
    """One (variant, seed) run of a comparison and what to do with it."""

    label: str
    seed: int
    overrides: tuple[str, ...]
    run_dir: Path
    action: str  # "reuse" (finished), "resume" (has a checkpoint) or "train"


def run_job(
    recipe_path: str, job: Job, threads: int = 0, progress: bool = False
) -> tuple[dict[str, Any], float]:
    """Train (or resume) one job; returns its final results (per task, and continual
    or curriculum numbers) and the seconds it took. ``threads`` caps torch's threads
    when the recipe sets none (parallel jobs share the cores); ``progress`` shows the
    run's own progress (a sweep running one job at a time)."""
    from mtrl.recipes import load_recipe

    start = time.perf_counter()
    if threads:
        import torch

        torch.set_num_threads(threads)
    kind, cfg = load_recipe(recipe_path, job.overrides)
    try:
        results = kind.train(cfg, job.run_dir, resume=job.action == "resume", progress=progress)
    except Exception as exc:  # a worker's error travels pickled, without its chain
        if not disk_full(exc):
            raise
        raise DiskFullError(
            f"no space left on the device of {job.run_dir}; what was checkpointed is "
            "intact: free space, then run the same command again to continue"
        ) from exc
    return dict(results), time.perf_counter() - start
