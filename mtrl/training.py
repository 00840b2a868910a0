"""Scaffolding shared by every training loop: opening the run (one writer, locked),
progress bars, checkpoints, deferred Ctrl-C, and resuming with metrics rolled back."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from mtrl.runs import RunDir, warn
from mtrl.seeding import seed_everything


def open_run(recipe: Any, run_dir: str | Path, resume: bool) -> RunDir:
    """Create (or reopen, when resuming) the run directory and hold its lock (one
    writer per run), set threads, seed everything."""
    run = RunDir.create(run_dir, recipe, exist_ok=resume)
    run.acquire()
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
    ``state(step)`` builds what to save; the number of metrics rows written so far is
    added, so that a resume rolls back the rows logged after the checkpoint. Only the
    newest ``keep`` checkpoints stay (None: all)."""

    def __init__(
        self,
        run: RunDir,
        every: int,
        total: int,
        start: int,
        state: Callable[[int], Mapping[str, Any]],
        keep: int | None = None,
    ) -> None:
        self.run, self.every, self.total, self.state = run, every, total, state
        self.keep = keep
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
        state = {**self.state(step), "metric_rows": self.run.metric_rows()}
        self.run.save_checkpoint(state, step, keep=self.keep)


def resume_state(run: RunDir, resume: bool) -> dict[str, Any] | None:
    """The newest intact checkpoint when resuming (metrics.csv rolled back to the rows
    it had then), else None. Resuming a run without a checkpoint starts it over, with
    a warning, from an empty metrics.csv."""
    if not resume:
        return None
    if not run.checkpoint_paths():
        dropped = run.truncate_metrics(0)
        warn(
            f"{str(run.path)!r} has no checkpoint to resume from; starting it over"
            + (f" (dropped {dropped} metrics rows)" if dropped else "")
        )
        return None
    state = run.load_checkpoint()
    rows = state.get("metric_rows")
    if rows is not None:
        run.truncate_metrics(int(rows))
    return state


class InterruptGuard:
    """Defers Ctrl-C to the training loop's next consistent point.

    Within the block, SIGINT only sets :attr:`requested`; the loop calls :meth:`check`
    where its state is whole (between env steps or updates), which raises
    KeyboardInterrupt for the loop's handler to save a checkpoint. Further presses
    while that checkpoint is written are ignored, so it is never cut short; the third
    press aborts at once (without saving). Outside the main thread it does nothing.
    """

    def __init__(self) -> None:
        self.requested = 0
        self._previous: Any = None

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested += 1
        if self.requested >= 3:
            raise KeyboardInterrupt

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
