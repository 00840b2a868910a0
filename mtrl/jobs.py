"""One run of a sweep (a variant at a seed) and how a worker trains it: shared by
`mtrl compare`'s local process pool and its Ray executor."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtrl.errors import DiskFullError, disk_full


@dataclass(frozen=True)
class RecipeSource:
    """A recipe as a sweep read it, once: every run of the sweep is made from these
    contents, so a recipe file edited while the sweep runs changes none of its runs
    (a rerun with the edited file is another comparison, refused by its identity)."""

    name: str  # the file it was read from, for messages
    data: dict[str, Any]

    @classmethod
    def read(cls, path: str | Path) -> RecipeSource:
        from mtrl.recipes import read_toml

        return cls(str(path), read_toml(path))

    def load(self, overrides: Sequence[str] = ()) -> tuple[Any, Any]:
        """The kind and typed config with ``--set`` overrides applied (validated)."""
        from mtrl.config import apply_overrides
        from mtrl.recipes import parse_recipe

        data = apply_overrides(copy.deepcopy(self.data), overrides)
        return parse_recipe(data, self.name)


@dataclass(frozen=True)
class Job:
    """One (variant, seed) run of a comparison and what to do with it."""

    label: str
    seed: int
    overrides: tuple[str, ...]
    run_dir: Path
    action: str  # "reuse" (finished), "resume" (has a checkpoint) or "train"


def run_job(
    recipe: RecipeSource, job: Job, threads: int = 0, progress: bool = False
) -> tuple[dict[str, Any], float]:
    """Train (or resume) one job; returns its final results (per task, and continual
    or curriculum numbers) and the seconds it took. ``threads`` caps torch's threads
    when the recipe sets none (parallel jobs share the cores); ``progress`` shows the
    run's own progress (a sweep running one job at a time)."""
    start = time.perf_counter()
    if threads:
        import torch

        torch.set_num_threads(threads)
    kind, cfg = recipe.load(job.overrides)
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
