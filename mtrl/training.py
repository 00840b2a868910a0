"""Scaffolding shared by every training loop: opening the run, progress bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtrl.runs import RunDir
from mtrl.seeding import seed_everything


def open_run(recipe: Any, run_dir: str | Path, resume: bool) -> RunDir:
    """Create (or reopen, when resuming) the run directory, set threads, seed everything."""
    run = RunDir.create(run_dir, recipe, exist_ok=resume)
    threads = int(getattr(recipe, "threads", 0))
    if threads:
        import torch

        torch.set_num_threads(threads)
    seed_everything(recipe.seed)
    return run


def progress_bar(enabled: bool, total: int, initial: int, desc: str, unit: str) -> Any:
    """A tqdm bar when ``enabled`` (an interactive terminal), else None."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit)
