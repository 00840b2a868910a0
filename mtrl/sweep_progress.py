"""What a sweep tells its user: a line per finished run (variant, seed, score, time)
with the sweep's progress and ETA, a line now and then while runs train, and, when
it is stopped, which runs finished, which were interrupted (checkpointed: the next
run of the command resumes them) and which never started."""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from mtrl.errors import ConfigError
from mtrl.jobs import Job
from mtrl.progress import duration

Metric = Literal["auto", "success", "return"]


def number(value: Any) -> float:
    """A per-task number read back from strict JSON (null stands for NaN)."""
    return math.nan if value is None else float(value)


def score_text(value: float) -> str:
    """A score as a line shows it: two decimals below 10 (a success rate's 0 is 0.00),
    one below 100, whole numbers above (a return of 1234.5 is 1234, not 1.23e+03)."""
    size = abs(value)
    if size < 10:
        return f"{value:.2f}"
    return f"{value:.1f}" if size < 100 else f"{value:.0f}"


def scores(per_task: Sequence[dict[str, Any]], metric: Metric = "auto") -> tuple[str, list[float]]:
    """The metric a run is compared by (``auto``: success if reported, else return)
    and its per-task values."""
    success = [number(r.get("success")) for r in per_task]
    if metric != "return" and success and all(math.isfinite(s) for s in success):
        return "success", success
    if metric == "success":
        raise ConfigError("--metric success: these runs report no success; use return")
    return "return", [number(r.get("return")) for r in per_task]


def time_left(running_left: Sequence[float], queued: int, pace: float, slots: int) -> float:
    """Seconds until the last run ends, when the runs in training need ``running_left``
    more seconds, each queued run takes ``pace`` and starts on the first of ``slots``
    to come free (a pool hands out runs in order)."""
    free = [max(t, 0.0) for t in running_left]
    free += [0.0] * max(slots - len(free), 0)
    heapq.heapify(free)
    end = max(free, default=0.0)
    for _ in range(queued):
        start = heapq.heappop(free)
        end = max(end, start + pace)
        heapq.heappush(free, start + pace)
    return end


def _names(jobs: Sequence[Job], most: int = 8) -> str:
    shown = [f"{j.label} seed {j.seed}" for j in jobs[:most]]
    more = f", and {len(jobs) - most} more" if len(jobs) > most else ""
    return ", ".join(shown) + more


class SweepProgress:
    """Tells ``log`` how the runs of ``jobs`` go; executors call :meth:`finished` as
    runs end, :meth:`tick` while they wait and :meth:`stopped` when interrupted.
    ``slots``: how many runs train at once; the first ``slots`` jobs start now and each
    finished run frees a slot for the next job in order."""

    def __init__(
        self,
        jobs: Sequence[Job],
        log: Callable[[str], None],
        metric: Metric = "auto",
        every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        slots: int = 1,
    ) -> None:
        self.jobs, self.log, self.metric = list(jobs), log, metric
        self.every, self.clock = every, clock
        self.t0 = self.last = clock()
        self.done: list[Job] = []
        self.fresh: list[float] = []  # seconds of each run trained from its start
        self.use_slots(slots)

    def use_slots(self, slots: int) -> None:
        """``slots`` runs train at once from now (a Ray cluster tells only once joined)."""
        self.slots = max(1, slots)
        self.started = {job: self.clock() for job in self.jobs[: self.slots]}

    def eta(self) -> float | None:
        """Seconds left, each run taking as long as the fresh runs finished so far did on
        average (a resumed run did only part of its work, so it does not set the pace;
        one still to go counts as a whole run). None before a fresh run has finished."""
        if not self.fresh:
            return None
        pace, now = sum(self.fresh) / len(self.fresh), self.clock()
        left = [j for j in self.jobs if j not in self.done]
        running = [pace - (now - self.started[j]) for j in left if j in self.started]
        return time_left(running, len(left) - len(running), pace, self.slots)

    def finished(self, job: Job, results: dict[str, Any], seconds: float) -> None:
        self.done.append(job)
        self.last = self.clock()
        if job.action != "resume":
            self.fresh.append(seconds)
        waiting = [j for j in self.jobs if j not in self.started]
        if waiting:
            self.started[waiting[0]] = self.last
        name, values = scores(results.get("per_task", []), self.metric)
        finite = [v for v in values if math.isfinite(v)]
        score = f"{name} {score_text(sum(finite) / len(finite))}" if finite else f"no {name}"
        line = f"[{len(self.done)}/{len(self.jobs)}] {job.label} seed {job.seed}: "
        line += f"{'resumed and ' if job.action == 'resume' else ''}finished in "
        line += f"{duration(seconds)}, {score} (mean over tasks)"
        eta = self.eta()
        if eta is not None and len(self.done) < len(self.jobs):
            line += f" | ETA {duration(eta)}"
        self.log(line)

    def tick(self, running: int) -> None:
        """A line after ``every`` seconds without a finished run, so a sweep of long
        runs is never silent; the wait grows with the sweep's age (a tenth of it, at
        most ten times ``every``) so a sweep of hours does not fill its log."""
        now = self.clock()
        if now - self.last < min(max(self.every, (now - self.t0) / 10), 10 * self.every):
            return
        self.last = now
        queued = len(self.jobs) - len(self.done) - running
        line = f"mtrl: sweep {len(self.done)}/{len(self.jobs)} runs finished, {running} "
        line += f"training, {queued} queued | {duration(now - self.t0)} elapsed"
        eta = self.eta()
        self.log(line + (f" | ETA {duration(eta)}" if eta is not None else ""))

    def stopped(self, interrupted: Sequence[Job]) -> None:
        """Which runs finished, which were interrupted and which never started."""
        left = [j for j in self.jobs if j not in self.done and j not in interrupted]
        if self.done:
            self.log(f"finished ({len(self.done)}): {_names(self.done)}")
        if interrupted:
            self.log(
                f"interrupted ({len(interrupted)}, checkpointed; resumed next time): "
                f"{_names(interrupted)}"
            )
        if left:
            self.log(f"not started ({len(left)}): {_names(left)}")
