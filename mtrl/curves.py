"""Learning curves over seeds: an arm's mean evaluation metric against env steps with a
percentile-bootstrap 95% CI band over its seeds, the sample-efficiency view beside a
comparison's final-score bars (`mtrl compare` writes ``compare_curves.png``)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtrl.plotting import column_name
from mtrl.runs import RunDir
from mtrl.stats import bootstrap_ci


def eval_curve(
    rows: Sequence[Mapping[str, str]], column: str, x: str = "step"
) -> dict[float, float]:
    """``x -> value`` of ``column`` at each row of a run's metrics where both are set and
    finite (the evaluation rows); a later row at the same ``x`` wins."""
    out: dict[float, float] = {}
    for row in rows:
        try:
            xv, yv = float(row.get(x) or "nan"), float(row.get(column) or "nan")
        except ValueError:
            continue
        if math.isfinite(xv) and math.isfinite(yv):
            out[xv] = yv
    return out


@dataclass(frozen=True)
class Band:
    """An arm's curve: at each x every run reached, the mean over runs and a percentile
    bootstrap 95% CI of that mean (both ends the mean for a single run)."""

    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    runs: int
    curves: tuple[Mapping[float, float], ...] = ()  # each run's own, to draw beside the mean


def curve_band(curves: Sequence[Mapping[float, float]], seed: int = 0) -> Band:
    """The mean and CI over ``curves`` (one per seed) at the x values all of them share,
    so every point averages the same runs."""
    if not curves:
        raise ValueError("curve_band needs at least one curve")
    shared = sorted(set.intersection(*(set(c) for c in curves)))
    mean, low, high = [], [], []
    for xv in shared:
        values = [c[xv] for c in curves]
        mean.append(float(np.mean(values)))
        lo, hi = bootstrap_ci(values, seed=seed) if len(values) > 1 else (mean[-1], mean[-1])
        low.append(lo)
        high.append(hi)
    x, m, lo_, hi_ = (np.array(v) for v in (shared, mean, low, high))
    return Band(x, m, lo_, hi_, runs=len(curves), curves=tuple(curves))


def arm_bands(arms: Mapping[str, Sequence[Path]], column: str) -> dict[str, Band]:
    """Each arm's band of ``column`` from its runs' metrics.csv; arms whose runs logged
    no such column (another kind's metrics) are left out."""
    bands = {}
    for name, runs in arms.items():
        curves = [eval_curve(RunDir.open(r).read_metrics(), column) for r in runs]
        if curves and all(curves):
            band = curve_band(curves)
            if band.x.size:
                bands[name] = band
    return bands


def plot_bands(
    bands: Mapping[str, Band], column: str, path: Path, title: str = "", bar: float | None = None
) -> Path:
    """One line per arm with its CI band, env steps on x; the title says what the line
    and the band are. More than three arms get a panel each (overlaid bands hide one
    another), with each seed's own curve beside the mean. ``bar``: a dashed reference
    line (a claim's threshold, say)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(bands) > 3:
        return _plot_panels(bands, column, path, title, bar)
    fig, ax = plt.subplots(figsize=(6.4, 3.6 + 0.25 * len(bands)))
    if bar is not None:
        ax.axhline(bar, color="0.3", linestyle="--", linewidth=1, label=f"{bar:g}")
    for name, band in bands.items():
        label = textwrap.fill(f"{name} ({band.runs} seed{'s' if band.runs > 1 else ''})", 60)
        (line,) = ax.plot(band.x, band.mean, marker="o", markersize=3, label=label)
        if band.runs > 1:
            ax.fill_between(band.x, band.low, band.high, color=line.get_color(), alpha=0.2)
    what, _ = column_name(column)
    ax.set_title((f"{title}\n" if title else "") + band_caption(what, bands), fontsize=9)
    _style(ax, column)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _plot_panels(
    bands: Mapping[str, Band], column: str, path: Path, title: str, bar: float | None
) -> Path:
    """A panel per arm on shared axes: each seed's curve thin, the mean over seeds bold
    with its CI band."""
    import matplotlib.pyplot as plt

    cols = min(4, len(bands))
    rows = math.ceil(len(bands) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 2.8 * rows + 0.8), sharex=True, sharey=True, squeeze=False
    )
    for ax, (name, band) in zip(axes.flat, bands.items(), strict=False):
        for curve in band.curves:
            xs = sorted(curve)
            ax.plot(xs, [curve[x] for x in xs], color="0.6", linewidth=0.8)
        ax.plot(band.x, band.mean, color="C0", marker="o", markersize=3)
        if band.runs > 1:
            ax.fill_between(band.x, band.low, band.high, color="C0", alpha=0.2)
        if bar is not None:
            ax.axhline(bar, color="0.3", linestyle="--", linewidth=1)
        seeds = f"{band.runs} seed{'s' if band.runs > 1 else ''}"
        ax.set_title(textwrap.fill(f"{name} ({seeds})", 36), fontsize=8)
        _axes(ax, column)
    for ax in axes[:, 1:].flat:  # the y axis is shared along a row
        ax.set_ylabel("")
    for ax in list(axes.flat)[len(bands) :]:
        ax.set_visible(False)
    what, _ = column_name(column)
    lines = band_caption(what, bands) + "; grey: each seed"
    if bar is not None:
        lines += f"; dashed: {bar:g}"
    fig.suptitle((f"{title}\n" if title else "") + textwrap.fill(lines, 40 * cols), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def band_caption(what: str, bands: Mapping[str, Band]) -> str:
    """What a curve plot's lines and bands are; no band is promised where every arm has
    one seed."""
    seeds = sorted({b.runs for b in bands.values()})
    counts = "/".join(map(str, seeds))
    if seeds == [1]:
        return f"{what} (a run's mean over its tasks): one seed per line, no CI"
    return (
        f"{what} (a run's mean over its tasks): mean over {counts} seeds, "
        "bands 95% bootstrap CI over seeds"
    )


def _axes(ax: Any, column: str) -> None:
    """Axes labels, env-step ticks (20k), the success range."""
    from matplotlib.ticker import EngFormatter, MaxNLocator

    _, ylabel = column_name(column)
    ax.set_xlabel("env steps")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(6))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    if ylabel == "success rate":
        ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)


def _style(ax: Any, column: str) -> None:
    """:func:`_axes`, and the legend below."""
    _axes(ax, column)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
