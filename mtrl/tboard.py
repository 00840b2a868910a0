"""TensorBoard event files beside metrics.csv: every row a run logs, as scalars.

``tensorboard --logdir runs`` then shows each run's losses, per-task return and
success, temperatures and curriculum state while it trains. A resumed run hides the
events its checkpoint did not keep (TensorBoard's ``purge_step``), as metrics.csv
drops those rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

STEP_KEYS = ("step", "iteration", "episode", "bc_step", "warm_step")


def row_step(row: Mapping[str, Any], fallback: int) -> int:
    """The x-axis value of a metrics row: its step, iteration or episode column."""
    for key in STEP_KEYS:
        value = row.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return int(value)
    return fallback


def scalar_tag(key: str) -> str:
    """TensorBoard tag of a metrics column: ``eval_return`` -> ``eval/return``,
    ``train_return`` -> ``train/return``, ``critic_loss`` -> ``train/critic_loss``;
    per-task columns (``return/3``, ``train_return/3``) stay."""
    if "/" in key:
        return key
    for prefix in ("eval", "train"):
        if key.startswith(prefix + "_"):
            return f"{prefix}/{key[len(prefix) + 1 :]}"
    return "train/" + key


def scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """The finite numeric entries of a row, by tag (step columns left out)."""
    out = {}
    for key, value in row.items():
        if key in STEP_KEYS or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            out[scalar_tag(key)] = float(value)
    return out


class EventLog:
    """A lazily opened ``SummaryWriter`` on ``path`` (the run directory)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: Any = None
        self._purge: int | None = None
        self._rows = 0

    def purge_from(self, step: int) -> None:
        """Hide events at ``step`` and later (a resume rolled the metrics back)."""
        self.close()
        self._purge = step

    def write(self, row: Mapping[str, Any]) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.path), purge_step=self._purge)
            self._purge = None
        step = row_step(row, self._rows)
        self._rows += 1
        for tag, value in scalars(row).items():
            self._writer.add_scalar(tag, value, step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
