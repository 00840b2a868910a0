"""The training context every loop shares: the locked run directory, the checkpoint a
resume starts from, progress, the deferred Ctrl-C, periodic checkpoints, the wall
clock and the summary."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mtrl.agents.hooks import LoopComponent
from mtrl.runs import RunDir
from mtrl.stopping import InterruptGuard
from mtrl.training import Checkpointer, open_run, progress_bar, resume_state

StateFn = Callable[[int], Mapping[str, Any]]
Rows = list[dict[str, Any]]


class TrainingContext:
    """One run being trained. ``state`` is the checkpoint to resume from (None on a
    fresh run); :meth:`start` names what a checkpoint holds and starts the clock."""

    def __init__(self, recipe: Any, run_dir: str | Path, resume: bool) -> None:
        self.recipe = recipe
        self.run: RunDir = open_run(recipe, run_dir, resume)
        self.state: dict[str, Any] | None = resume_state(self.run, resume)
        if self.state is not None and self.run.loaded_checkpoint is not None:
            where = self.run.loaded_checkpoint.relative_to(self.run.path)
            print(f"mtrl: resuming {self.run.path} from {where}", file=sys.stderr)
        self._ckpt: Checkpointer | None = None
        self._bar: Any = None
        self._guard: InterruptGuard | None = None
        self._elapsed, self._t0 = 0.0, time.perf_counter()

    def start(
        self,
        state: StateFn,
        *,
        total: int,
        step: int,
        progress: bool,
        desc: str = "env steps",
        unit: str = "step",
        elapsed: float = 0.0,
    ) -> None:
        """Checkpoint ``state(step)`` every ``recipe.checkpoint_every`` steps of
        ``total`` (the newest ``recipe.keep_checkpoints`` kept); show progress from
        ``step``; count ``elapsed`` seconds already trained (a resume's)."""
        every, keep = self.recipe.checkpoint_every, self.recipe.keep_checkpoints or None
        kind = self.recipe.kind

        def with_kind(at: int) -> Mapping[str, Any]:  # a misfit on load names both kinds
            return {"kind": kind, **state(at)}

        self._ckpt = Checkpointer(self.run, every, total, step, with_kind, keep=keep)
        self._bar = progress_bar(progress, total, step, desc, unit, self.run)
        self._elapsed, self._t0 = elapsed, time.perf_counter()

    def elapsed(self) -> float:
        """Seconds trained, across resumes."""
        return self._elapsed + time.perf_counter() - self._t0

    def log(self, row: Mapping[str, Any]) -> None:
        self.run.log_metrics(row)

    def advance(self, steps: int, **postfix: str) -> None:
        """``steps`` more done (the progress bar, with ``postfix`` numbers beside it; a
        vector step past the budget does not take it past its total)."""
        if self._bar is not None:
            self._bar.update(max(0, min(steps, self._bar.total - self._bar.n)))
            if postfix:
                self._bar.set_postfix(**postfix)

    def phases(self, components: Sequence[LoopComponent], step: int) -> tuple[int, Rows]:
        """A fresh run's phases before the loop (cloning, DAgger, warm starts), each
        component's in turn from env step ``step``: the env steps they took and the last
        evaluation rows. After any ran, a checkpoint, so a resume starts where the loop
        starts."""
        taken, ran = 0, False
        rows: Rows = []
        for c in components:
            done = c.before_loop()
            if done is not None:
                ran = True
                taken += done[0]
                rows = done[1] or rows
                self.advance(done[0])
        if ran:
            self.checkpoint_from(step + taken)
        return taken, rows

    def periodic_checkpoint(self, step: int) -> None:
        assert self._ckpt is not None
        self._ckpt.step(step)

    def checkpoint_from(self, step: int) -> None:
        """Save now and count the next periodic checkpoint from ``step`` (after a phase
        that took steps before the loop)."""
        assert self._ckpt is not None
        every = self._ckpt.every
        self._ckpt.next = (step // every + 1) * every
        self._ckpt.save(step)

    def save(self, step: int) -> None:
        assert self._ckpt is not None
        self._ckpt.save(step)

    def check(self) -> None:
        """Raise KeyboardInterrupt if Ctrl-C was pressed (call where the state is whole)."""
        assert self._guard is not None
        self._guard.check()

    @contextmanager
    def guarded(self, step: Callable[[], int]) -> Iterator[None]:
        """Ctrl-C deferred to :meth:`check`; on it, a checkpoint at ``step()`` before
        the interrupt goes on; the progress bar closed either way."""
        self._guard = InterruptGuard()
        try:
            with self._guard:
                try:
                    yield
                except KeyboardInterrupt:
                    self.save(step())
                    raise
        finally:
            self._guard = None
            if self._bar is not None:
                self._bar.close()

    def finish(self, results: Mapping[str, Any], **summary: Any) -> None:
        """Write ``summary.json``: the seed, the results and ``summary``'s entries."""
        self.run.write_summary(seed=self.recipe.seed, results=results, **summary)
