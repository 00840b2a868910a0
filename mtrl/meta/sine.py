"""Sine-wave regression tasks (Finn et al. 2017): ``y = A sin(x - phase)``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from mtrl.config import check_fields
from mtrl.errors import ConfigError


@dataclass(frozen=True)
class SineTaskConfig:
    """Task distribution: amplitude, phase and input ranges, each ``[low, high]``."""

    amplitude: list[float] = field(default_factory=lambda: [0.1, 5.0])
    phase: list[float] = field(default_factory=lambda: [0.0, math.pi])
    x_range: list[float] = field(default_factory=lambda: [-5.0, 5.0])

    def __post_init__(self) -> None:
        check_fields(self)
        for key in ("amplitude", "phase", "x_range"):
            bounds = getattr(self, key)
            if len(bounds) != 2 or not bounds[0] <= bounds[1]:
                raise ConfigError(f"task.{key} = {bounds!r} must be [low, high] with low <= high")


class SineBatch(NamedTuple):
    """Support and query sets of ``tasks`` sine tasks, each ``[tasks, shots, 1]``."""

    xs: Tensor
    ys: Tensor
    xq: Tensor
    yq: Tensor
    amplitude: Tensor
    phase: Tensor


def _uniform(shape: tuple[int, ...], bounds: list[float], gen: torch.Generator) -> Tensor:
    lo, hi = bounds
    return torch.rand(shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo


def sample_sine_batch(
    tasks: int, shots: int, query: int, gen: torch.Generator, config: SineTaskConfig
) -> SineBatch:
    """Draw ``tasks`` sine tasks with ``shots`` support and ``query`` query points each.

    Sampled in float64 and returned as float32 so that the draw does not depend on the
    default dtype; the same generator state gives the same tasks on every machine.
    """
    if tasks < 1 or shots < 1 or query < 1:
        raise ValueError(f"tasks, shots and query must be >= 1, got {tasks}, {shots}, {query}")
    amp = _uniform((tasks, 1, 1), config.amplitude, gen)
    phase = _uniform((tasks, 1, 1), config.phase, gen)
    x = _uniform((tasks, shots + query, 1), config.x_range, gen)
    y = amp * torch.sin(x - phase)
    f = torch.float32
    return SineBatch(
        x[:, :shots].to(f),
        y[:, :shots].to(f),
        x[:, shots:].to(f),
        y[:, shots:].to(f),
        amp.flatten().to(f),
        phase.flatten().to(f),
    )
