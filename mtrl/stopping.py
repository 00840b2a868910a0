"""Stopping cleanly: Ctrl-C, SIGTERM and SIGHUP (what schedulers and terminals send
before a kill) deferred to a training loop's next consistent point, raised as
:class:`Interrupted` elsewhere, and ignored while a stopped sweep waits for its runs'
checkpoints."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any

# what stops a run cleanly: Ctrl-C, and what schedulers and terminals send before a kill
STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


def stop_on_ctrl_c_only() -> None:
    """In a sweep's worker process: only Ctrl-C stops a run cleanly there (the sweep
    passes SIGTERM and SIGHUP on as Ctrl-C); SIGTERM keeps its default, so a pool can
    still end a worker at once."""
    STOP_SIGNALS[:] = [signal.SIGINT]


_EARLY: list[int] = []  # stop signals that came before a guard (see defer_stop_signals)


def defer_stop_signals() -> None:
    """Keep stop signals that arrive outside a training loop (a sweep's worker setting
    up its next run) for the next :class:`InterruptGuard`, which then stops at its
    first consistent point, instead of losing them or killing the process."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda signum, frame: _EARLY.append(signum))


def stop_pending() -> bool:
    """Whether a stop signal came outside a training loop (see defer_stop_signals)."""
    return bool(_EARLY)


class Interrupted(KeyboardInterrupt):
    """A run stopped by ``signum`` (SIGINT, SIGTERM or SIGHUP) at a consistent point."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)  # args: what a worker process pickles it back from
        self.signum = int(signum)

    def __str__(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def name(self) -> str:
        return "Ctrl-C" if self.signum == signal.SIGINT else signal.Signals(self.signum).name


@contextlib.contextmanager
def signals_as_interrupts(ctrl_c: bool = False) -> Iterator[list[int]]:
    """SIGTERM and SIGHUP raise :class:`Interrupted` as Ctrl-C raises KeyboardInterrupt,
    where no training loop defers them (setting up, the final evaluation): a command
    then stops as on Ctrl-C, its newest checkpoint intact, instead of dying unsaid.
    ``ctrl_c``: Ctrl-C too, whatever handler a library installed or the process
    inherited (a Ray driver waiting on its tasks: Ray sets its own SIGTERM handler).
    Yields the signals received, in order (a library that turns the exception into a
    plain KeyboardInterrupt loses the signal's name)."""
    received: list[int] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        raise Interrupted(signum)

    signals = [s for s in STOP_SIGNALS if ctrl_c or s != signal.SIGINT]
    previous = {sig: signal.signal(sig, interrupt) for sig in signals}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def ignoring_stop_signals() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP ignored: while a stopped sweep waits for its runs to
    finish their checkpoints (they take their own signals; a third Ctrl-C aborts them)."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class InterruptGuard:
    """Defers Ctrl-C, SIGTERM and SIGHUP to the training loop's next consistent point.

    Within the block, a stop signal only sets :attr:`requested` (and :attr:`signum`, the
    first one's); the loop calls :meth:`check` where its state is whole (between env
    steps or updates), which raises :class:`Interrupted` for the loop's handler to save
    a checkpoint. Further signals while that checkpoint is written are ignored, so it is
    never cut short; the third aborts at once (without saving). Outside the main thread
    it does nothing.
    """

    def __init__(self) -> None:
        self.requested = 0
        self.signum: int = signal.SIGINT
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> InterruptGuard:
        if _EARLY:  # it came while the run was setting up
            self.requested, self.signum = 1, _EARLY[0]
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.requested:
            self.signum = signum
        self.requested += 1
        if self.requested >= 3:
            raise Interrupted(self.signum)

    def check(self) -> None:
        if self.requested:
            raise Interrupted(self.signum)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
