"""One run of a sweep (a variant at a seed) and how a worker trains it: shared by
`mtrl compare`'s local process pool and its Ray executor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Job:
    """One (variant, seed) run of a comparison and what to do with it."""

    label: str
    seed: int
    overrides: tuple[str, ...]
    run_dir: Path
    action: str  # "reuse" (finished), "resume" (has a checkpoint) or "train"


def run_job(recipe_path: str, job: Job, threads: int = 0) -> dict[str, Any]:
    """Train (or resume) one job; returns its final results (per task, and continual
    or curriculum numbers). ``threads`` caps torch's threads when the recipe sets none
    (parallel jobs share the cores)."""
    from mtrl.recipes import load_recipe

    if threads:
        import torch

        torch.set_num_threads(threads)
    kind, cfg = load_recipe(recipe_path, job.overrides)
    return dict(kind.train(cfg, job.run_dir, resume=job.action == "resume"))
