"""Scaffolding shared by every training loop: opening the run, progress bars, checkpoints."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


class Checkpointer:
    """When a training loop saves its resumable state: every ``every`` steps before the
    last (:meth:`step`), and on Ctrl-C and at the end (:meth:`save`, called by the loop).
    ``state(step)`` builds what to save."""

    def __init__(
        self,
        run: RunDir,
        every: int,
        total: int,
        start: int,
        state: Callable[[int], Mapping[str, Any]],
    ) -> None:
        self.run, self.every, self.total, self.state = run, every, total, state
        self.next = (start // every + 1) * every

    def step(self, step: int) -> None:
        """Save if ``step`` reached the next multiple of ``every`` (and is not the last)."""
        if step < self.next:
            return
        if step < self.total:
            self.save(step)
        while self.next <= step:
            self.next += self.every

    def save(self, step: int) -> None:
        self.run.save_checkpoint(self.state(step), step)


def resume_state(run: RunDir, resume: bool) -> dict[str, Any] | None:
    """The newest checkpoint when resuming a run that has one, else None."""
    if resume and any(run.checkpoints.glob("step_*.pt")):
        return run.load_checkpoint()
    return None
