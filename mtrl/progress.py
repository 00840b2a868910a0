"""Progress of a training run: a tqdm bar on a terminal, else a periodic one-line log
(nohup, CI, a pipe), so that no run is silent for minutes."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

SUMMARY_KEYS = {
    "return": ("train_return", "eval_return", "return", "meta_loss", "loss"),
    "success": ("train_success", "eval_success", "success"),
}


def duration(seconds: float) -> str:
    """``3h05m``, ``12m04s`` or ``42s``."""
    s = int(max(seconds, 0))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def latest_scores(row: Mapping[str, Any]) -> dict[str, float]:
    """The return (or loss) and success a progress line shows, from a metrics row."""
    out = {}
    for name, keys in SUMMARY_KEYS.items():
        for key in keys:
            value = row.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                out[key if key in ("meta_loss", "loss") else name] = float(value)
                break
    return out


def rate_text(rate: float, unit: str) -> str:
    """``85.3 step/s``; under one a second, the seconds each takes (``11.2 s/it``: a
    meta-RL iteration), which "0.0 it/s" would hide."""
    if 0 < rate < 1:
        return f"{1 / rate:.1f} s/{unit}"
    return f"{rate:.1f} {unit}/s"


def progress_line(
    desc: str, unit: str, done: int, total: int, rate: float, scores: Mapping[str, float]
) -> str:
    """``mtrl: env steps 12,000/100,000 (12%) | 85.3 step/s | ETA 17m12s | return -3.1``."""
    parts = [f"mtrl: {desc} {done:,}/{total:,} ({100 * done / max(total, 1):.0f}%)"]
    parts.append(rate_text(rate, unit))
    if done < total and rate > 0:
        parts.append(f"ETA {duration((total - done) / rate)}")
    parts += [f"{k} {v:.3g}" for k, v in scores.items()]
    return " | ".join(parts)


def _clock(seconds_from_now: float) -> str:
    """The local time ``seconds_from_now`` ahead, e.g. ``at 14:05`` (with the date
    when it is not today)."""
    end = time.localtime(time.time() + seconds_from_now)
    same_day = time.strftime("%Y%m%d", end) == time.strftime("%Y%m%d")
    return time.strftime("at %H:%M" if same_day else "on %b %d at %H:%M", end)


class ProgressLog:
    """tqdm's ``update``/``close`` as a line every ``every`` seconds and one at the end."""

    def __init__(
        self,
        total: int,
        initial: int,
        desc: str,
        unit: str,
        every: float = 30.0,
        stream: TextIO | None = None,
    ) -> None:
        self.total, self.n, self.desc, self.unit, self.every = total, initial, desc, unit, every
        self.stream = stream if stream is not None else sys.stderr
        self.start_n = initial
        self.t0 = self.last = time.perf_counter()
        self.scores: dict[str, float] = {}
        self.postfix: dict[str, Any] = {}
        self.projected = False  # the projected end is said once

    def note(self, row: Mapping[str, Any]) -> None:
        """Show the newest return/success of a metrics row."""
        self.scores.update(latest_scores(row))

    def set_postfix(self, **values: Any) -> None:
        """tqdm's postfix: shown after the scores."""
        self.postfix = values

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if not self.projected and now - self.t0 >= min(self.every, 10.0):
            self._project(now)
        if now - self.last >= self.every:
            self.last = now
            self._write(now)

    def _project(self, now: float) -> None:
        """Once, when the rate is measured (10 s in): when the run will end."""
        self.projected = True
        rate = (self.n - self.start_n) / max(now - self.t0, 1e-9)
        if self.n < self.total and rate > 0:
            left = (self.total - self.n) / rate
            line = f"mtrl: at {rate_text(rate, self.unit)} the run ends in ~{duration(left)}"
            print(f"{line} ({_clock(left)})", file=self.stream, flush=True)

    def _write(self, now: float) -> None:
        rate = (self.n - self.start_n) / max(now - self.t0, 1e-9)
        line = progress_line(self.desc, self.unit, self.n, self.total, rate, self.scores)
        line += "".join(f" | {k} {v}" for k, v in self.postfix.items())
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        self._write(time.perf_counter())
