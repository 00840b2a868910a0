"""Aggregate statistics over tasks, episodes and seeds (pure functions)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Two-sided 95% normal quantile; the sample sizes reported here are large (>= 30).
Z95 = 1.959963984540054


def mean_ci95(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95% confidence interval."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("mean_ci95 needs at least one value")
    if arr.size == 1:
        return float(arr[0]), math.nan
    return float(arr.mean()), float(Z95 * arr.std(ddof=1) / math.sqrt(arr.size))


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of the values (Agarwal et al. 2021)."""
    arr = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if arr.size == 0:
        raise ValueError("iqm needs at least one value")
    lo = math.floor(arr.size * 0.25)
    hi = math.ceil(arr.size * 0.75)
    return float(arr[lo:hi].mean()) if hi > lo else float(arr.mean())


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: str = "mean",
    reps: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean, median or IQM of ``values``."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if statistic not in ("mean", "median", "iqm"):
        raise ValueError(f"statistic must be 'mean', 'median' or 'iqm', got {statistic!r}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(reps, arr.size))
    samples = arr[idx]
    if statistic == "mean":
        stats = samples.mean(axis=1)
    elif statistic == "median":
        stats = np.median(samples, axis=1)
    else:
        stats = np.array([iqm(s) for s in samples])
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1.0 - alpha))


def stratified_bootstrap_ci(
    scores: Sequence[Sequence[float]] | np.ndarray,
    statistic: str = "iqm",
    reps: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile CI of the mean or IQM of a ``[runs, tasks]`` score matrix, resampling
    runs with replacement separately for each task (Agarwal et al. 2021)."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"scores must be a non-empty [runs, tasks] matrix, got {arr.shape}")
    if statistic not in ("mean", "iqm"):
        raise ValueError(f"statistic must be 'mean' or 'iqm', got {statistic!r}")
    runs, tasks = arr.shape
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, runs, size=(reps, runs, tasks))
    samples = arr[idx, np.arange(tasks)]  # [reps, runs, tasks]
    flat = samples.reshape(reps, -1)
    stats = flat.mean(axis=1) if statistic == "mean" else np.array([iqm(s) for s in flat])
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1.0 - alpha))


def probability_of_improvement(
    x: Sequence[Sequence[float]] | np.ndarray, y: Sequence[Sequence[float]] | np.ndarray
) -> float:
    """P(X > Y) of two ``[runs, tasks]`` score matrices (Agarwal et al. 2021): per task the
    chance a run of X beats a run of Y (ties count half), averaged over tasks."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not a.size or not b.size:
        raise ValueError(
            f"need [runs, tasks] matrices with the same tasks, got {a.shape}, {b.shape}"
        )
    diff = a[:, None, :] - b[None, :, :]  # [runs_x, runs_y, tasks]
    per_task = (diff > 0).mean(axis=(0, 1)) + 0.5 * (diff == 0).mean(axis=(0, 1))
    return float(per_task.mean())
