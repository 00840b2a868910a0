"""The numbers a curriculum decides with (pure functions): normalised scores, moving
averages, learning progress and the sampling distribution built from it."""

from __future__ import annotations

import numpy as np


def normalized_score(value: float, low: float, high: float) -> float:
    """``(value - low) / (high - low)``: 0 at a random policy's return, 1 at the target."""
    if not high > low:
        raise ValueError(f"target score {high} must exceed the random policy's {low}")
    return (value - low) / (high - low)


def ema(average: float, value: float, rate: float, started: bool) -> float:
    """One step of an exponential moving average; the first value starts it."""
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    return value if not started else average + rate * (value - average)


def learning_progress(fast: np.ndarray, slow: np.ndarray) -> np.ndarray:
    """Absolute learning progress ``|fast - slow|`` of two moving averages of each
    task's score (Portelas et al. 2020; Kanitscheider et al. 2021)."""
    fast, slow = np.asarray(fast, dtype=np.float64), np.asarray(slow, dtype=np.float64)
    if fast.shape != slow.shape:
        raise ValueError(f"fast {fast.shape} and slow {slow.shape} averages differ in shape")
    return np.abs(fast - slow)


def progress_probabilities(lp: np.ndarray, epsilon: float) -> np.ndarray:
    """Sampling probabilities proportional to learning progress, mixed with a uniform
    floor: ``(1 - eps) lp / sum(lp) + eps / n`` (uniform where no task progresses)."""
    lp = np.asarray(lp, dtype=np.float64)
    if lp.ndim != 1 or lp.size == 0:
        raise ValueError(f"learning progress must be a non-empty vector, got shape {lp.shape}")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    if np.any(lp < 0) or not np.all(np.isfinite(lp)):
        raise ValueError(f"learning progress must be finite and >= 0, got {lp}")
    uniform = np.full(lp.size, 1.0 / lp.size)
    total = lp.sum()
    if total <= 0.0:
        return uniform
    return (1.0 - epsilon) * lp / total + epsilon * uniform
