"""`mtrl compare`'s local executor: the runs of a sweep one after another in this
process, or ``jobs`` at a time in worker processes.

Stopping (Ctrl-C, which a terminal sends to every worker too, or SIGTERM/SIGHUP sent
to compare alone, which passes it on as Ctrl-C): the running runs checkpoint at their
next consistent point, queued ones never start, and :class:`SweepProgress` says which
is which before the interrupt goes on. Further Ctrl-Cs while the runs save are
ignored, so nothing hangs and no checkpoint is cut short.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from mtrl.jobs import Job, RecipeSource, run_job
from mtrl.stopping import ignoring_stop_signals
from mtrl.sweep_progress import SweepProgress

Results = dict[tuple[str, int], dict[str, Any]]


def run_in_turn(recipe: RecipeSource, pending: list[Job], progress: SweepProgress) -> Results:
    """Each job in this process, showing the run's own progress."""
    out: Results = {}
    for job in pending:
        doing = "resuming" if job.action == "resume" else "training"
        progress.log(f"{job.label} seed {job.seed}: {doing} {job.run_dir}")
        try:
            results, seconds = run_job(recipe, job, progress=True)
        except KeyboardInterrupt:
            progress.stopped([job])
            raise
        out[job.label, job.seed] = results
        progress.finished(job, results, seconds)
    return out


class NotStarted(Exception):
    """A job a worker got after the sweep was stopped."""


def run_in_pool(
    recipe: RecipeSource, pending: list[Job], jobs: int, progress: SweepProgress
) -> Results:
    """``pending`` in ``jobs`` worker processes (the cores shared between them)."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    pool = ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_worker_setup, initargs=(stop,)
    )
    futures = {pool.submit(_run_unless_stopped, recipe, job, threads): job for job in pending}
    out: Results = {}
    try:
        waiting = set(futures)
        while waiting:
            done, waiting = wait(waiting, timeout=5.0, return_when=FIRST_COMPLETED)
            for fut in done:
                out[futures[fut].label, futures[fut].seed] = _finished(fut, futures, progress)
            progress.tick(running=min(jobs, len(waiting)))
    except BaseException as exc:  # Ctrl-C, SIGTERM, or a run failed: stop the rest
        with ignoring_stop_signals():  # a second Ctrl-C must not cut the report short
            _stop(exc, stop, pool, futures, progress)
        raise
    pool.shutdown(wait=True)
    return out


def _stop(
    exc: BaseException,
    stop: Any,
    pool: ProcessPoolExecutor,
    futures: dict[Future[Any], Job],
    progress: SweepProgress,
) -> None:
    """Queued runs never start, running ones checkpoint; then say what became of each."""
    stop.set()  # a job the pool had already handed to a worker does not start
    for fut in futures:
        fut.cancel()
    signum = getattr(exc, "signum", signal.SIGINT)
    ctrl_c = isinstance(exc, KeyboardInterrupt) and signum == signal.SIGINT
    if not ctrl_c:  # a terminal's Ctrl-C reached the workers too; else pass the stop
        for worker in multiprocessing.active_children():  # on to them as Ctrl-C
            os.kill(worker.pid or 0, signal.SIGINT)
    why = "interrupted" if isinstance(exc, KeyboardInterrupt) else "a run failed"
    progress.log(f"{why}: queued runs cancelled; the running ones checkpoint")
    pool.shutdown(wait=True, cancel_futures=True)
    _report(futures, progress)


def _finished(
    fut: Future[tuple[dict[str, Any], float]], futures: dict[Any, Job], progress: SweepProgress
) -> dict[str, Any]:
    if isinstance(fut.exception(), NotStarted):
        # only a stop makes a worker refuse a job: a Ctrl-C its run heard before this
        # process handled its own (under load the signal can reach it later)
        raise KeyboardInterrupt
    results, seconds = fut.result()
    progress.finished(futures[fut], results, seconds)
    return results


def _report(futures: dict[Future[Any], Job], progress: SweepProgress) -> None:
    """After a stop: the runs that ended meanwhile, then what became of each."""
    interrupted = []
    for fut, job in futures.items():
        if fut.cancelled() or job in progress.done:
            continue
        exc = fut.exception()
        if exc is None:
            results, seconds = fut.result()
            progress.finished(job, results, seconds)
        elif not isinstance(exc, NotStarted):
            interrupted.append(job)
    progress.stopped(interrupted)


_STOP: Any = None  # in a worker: the sweep's stop event


def _worker_setup(stop: Any) -> None:
    """In each worker: Ctrl-C stops a run in training (its guard checkpoints it); one
    that comes between runs or while a run sets up is kept for the run's guard (a
    worker's death would break the pool mid-checkpoint). SIGTERM keeps its default
    (compare passes it on as Ctrl-C), so a broken pool can end workers."""
    from mtrl.stopping import defer_stop_signals, stop_on_ctrl_c_only

    global _STOP
    _STOP = stop
    stop_on_ctrl_c_only()
    defer_stop_signals()


def _run_unless_stopped(
    recipe: RecipeSource, job: Job, threads: int
) -> tuple[dict[str, Any], float]:
    """``run_job``, unless the sweep was stopped before this worker got to it. The
    worker whose run Ctrl-C stopped stops the sweep itself: the job queued next to it
    must not start before compare, busy elsewhere, hears of it."""
    from mtrl.stopping import stop_pending

    if stop_pending() or (_STOP is not None and _STOP.is_set()):
        raise NotStarted
    try:
        return run_job(recipe, job, threads)
    except KeyboardInterrupt:
        if _STOP is not None:
            _STOP.set()
        raise
