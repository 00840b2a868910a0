"""What a sweep tells its user while it runs: the ETA of `mtrl compare`."""

from __future__ import annotations

import itertools
from pathlib import Path

from mtrl.jobs import Job
from mtrl.sweep_progress import SweepProgress, score_text, time_left

RESULTS = {"per_task": [{"success": 1.0}]}


def test_time_left_hands_queued_runs_to_the_first_free_slot() -> None:
    # two slots free at 100 s and 300 s; three queued runs of 1000 s each:
    # 100-1100, 300-1300, then 1100-2100 on the first slot again
    assert time_left([100.0, 300.0], 3, 1000.0, 2) == 2100.0
    assert time_left([100.0, 300.0], 0, 1000.0, 2) == 300.0
    assert time_left([], 3, 10.0, 1) == 30.0  # one at a time
    assert time_left([], 3, 10.0, 4) == 10.0  # more slots than runs
    assert time_left([-50.0], 1, 10.0, 1) == 10.0  # a run past the pace ends now


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _jobs(n: int, action: str = "train") -> list[Job]:
    return [Job("v", seed, (), Path(f"seed_{seed}"), action) for seed in range(n)]


def _sweep(jobs: list[Job], slots: int) -> tuple[SweepProgress, list[str], Clock]:
    lines: list[str] = []
    clock = Clock()
    return SweepProgress(jobs, lines.append, clock=clock, slots=slots), lines, clock


def test_the_eta_counts_the_runs_training_side_by_side() -> None:
    """Four runs of ~1 h, two at a time: when the first ends at 1 h, one run is in
    training (started with it) and two are queued, so ~1 h is left, not 3 x 1 h."""
    jobs = _jobs(4)
    progress, lines, clock = _sweep(jobs, slots=2)
    clock.now = 3600.0
    progress.finished(jobs[0], RESULTS, 3600.0)
    assert lines[-1].endswith("| ETA 1h00m")
    clock.now = 4500.0  # the second run is late; the third started at 1 h
    assert progress.eta() == 3600.0  # third ends at 2 h; fourth from now (1h15m) to 2h15m
    progress.finished(jobs[1], RESULTS, 4500.0)  # the pace is now 4050 s
    assert progress.eta() == 4050.0  # the fourth started now; the third has 3150 s left
    clock.now = 8550.0
    progress.finished(jobs[2], RESULTS, 4950.0)
    progress.finished(jobs[3], RESULTS, 4050.0)
    assert lines[-1] == "[4/4] v seed 3: finished in 1h07m, success 1.00 (mean over tasks)"


def test_a_resumed_run_does_not_set_the_pace() -> None:
    """A resumed run did only part of its work: the ETA waits for a fresh run."""
    jobs = [*_jobs(1, "resume"), *_jobs(3)[1:]]
    progress, lines, clock = _sweep(jobs, slots=1)
    clock.now = 600.0
    progress.finished(jobs[0], RESULTS, 600.0)
    assert "ETA" not in lines[-1] and progress.eta() is None
    clock.now = 4200.0
    progress.finished(jobs[1], RESULTS, 3600.0)
    assert lines[-1].endswith("| ETA 1h00m")  # one run of 1 h to go
    clock.now = 4200.0 + 600.0  # a tick line waits a tenth of the sweep's age
    progress.tick(running=1)
    assert lines[-1].endswith("0 queued | 1h20m elapsed | ETA 50m00s")


def test_a_long_sweep_says_where_it_stands_less_often() -> None:
    """A line a minute for the first ten minutes, then every tenth of the sweep's age,
    at most every ten minutes: a sweep of hours logs dozens of lines, not hundreds."""
    progress, lines, clock = _sweep(_jobs(2), slots=2)
    said: list[int] = []
    for second in range(0, 5 * 3600 + 1, 5):  # executors tick every 5 s
        clock.now = float(second)
        progress.tick(running=2)
        if len(lines) > len(said):
            said.append(second)
    assert said[:10] == [60 * m for m in range(1, 11)]
    assert lines[0] == "mtrl: sweep 0/2 runs finished, 2 training, 0 queued | 1m00s elapsed"
    for at, then in itertools.pairwise(said):  # a gap g from `at` waits g >= (at + g) / 10
        wait = min(max(60, at / 9), 600)
        assert wait <= then - at < wait + 5, (at, then)
    assert len(said) < 60  # not 300


def test_scores_read_as_numbers_not_exponents() -> None:
    """A finished run's line shows a success rate with two decimals and a return of
    thousands as a whole number."""
    assert [score_text(v) for v in (0.0, 0.925, -2.4911, 12.345, -135.04, 1234.5, 61234.0)] == [
        "0.00",
        "0.93",
        "-2.49",
        "12.3",
        "-135",
        "1234",
        "61234",
    ]
