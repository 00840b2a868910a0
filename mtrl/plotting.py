"""`mtrl plot`: learning curves from metrics.csv and per-task bars from summary.json."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtrl.errors import MtrlError
from mtrl.runs import RunDir

# x column and default y columns of each recipe kind
CURVES: dict[str, tuple[str, list[str]]] = {
    "mtsac": ("step", ["eval_success", "eval_return", "train_return"]),
    "mtppo": ("step", ["eval_success", "eval_return", "train_return"]),
    "sb3": ("step", ["eval_success", "eval_return", "train_return"]),
    "continual": ("step", ["eval_success", "eval_return", "train_return"]),
    "maml-rl": ("iteration", ["pre_return", "post_return"]),
    "sine": ("iteration", ["meta_loss"]),
}


def _series(rows: list[dict[str, str]], x: str, y: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in rows:
        try:
            xv, yv = float(r.get(x, "")), float(r.get(y, ""))
        except ValueError:
            continue
        if math.isfinite(yv):
            xs.append(xv)
            ys.append(yv)
    return xs, ys


def plot_run(
    run: RunDir, kind: str, columns: Sequence[str] = (), task_labels: dict[int, str] | None = None
) -> list[Path]:
    """Write ``plots/curves.png``, ``plots/per_task_curves.png`` when metrics.csv has
    per-task columns (``success/<id>``, else ``return/<id>``) and ``plots/per_task.png``
    when the summary has per-task results; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = run.read_metrics()
    if not rows:
        raise MtrlError(f"{run.path} has no metrics.csv rows yet; nothing to plot")
    x, default = CURVES.get(kind, ("step", []))
    known = set().union(*(r.keys() for r in rows))
    ys = list(columns) or [c for c in default if c in known and _series(rows, x, c)[0]]
    missing = [c for c in ys if c not in known]
    if missing:
        raise MtrlError(f"no column {missing} in metrics.csv; columns: {sorted(known)}")
    if not ys:
        raise MtrlError(f"pick columns to plot with --y; columns: {sorted(known)}")
    run.plots.mkdir(exist_ok=True)
    fig, axes = plt.subplots(1, len(ys), figsize=(4.2 * len(ys), 3.2), squeeze=False)
    for ax, col in zip(axes[0], ys, strict=True):
        xs, vs = _series(rows, x, col)
        ax.plot(xs, vs, marker="." if len(xs) < 50 else None)
        ax.set_xlabel(x)
        ax.set_title(col)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = [run.plots / "curves.png"]
    fig.savefig(out[0], dpi=110)
    plt.close(fig)
    per_task = _per_task(run)
    curves = _per_task_curves(run, rows, x, per_task, task_labels or {})
    if curves is not None:
        out.append(curves)
    if per_task:
        out.append(_bars(run, per_task))
    return out


def _per_task_curves(
    run: RunDir,
    rows: list[dict[str, str]],
    x: str,
    per_task: list[dict[str, Any]],
    task_labels: dict[int, str],
) -> Path | None:
    """One line per task of ``success/<id>`` (or ``return/<id>`` without success)."""
    import matplotlib.pyplot as plt

    known = set().union(*(r.keys() for r in rows))
    for metric in ("success", "return"):
        ids = sorted(
            int(c.split("/", 1)[1])
            for c in known
            if c.startswith(f"{metric}/") and c.split("/", 1)[1].isdigit()
        )
        series = {i: _series(rows, x, f"{metric}/{i}") for i in ids}
        series = {i: xy for i, xy in series.items() if xy[0]}
        if series:
            break
    else:
        return None
    labels = dict(task_labels)
    labels.update({int(r["task_id"]): str(r["task"]) for r in per_task if r.get("task")})
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for i, (xs, vs) in series.items():
        ax.plot(xs, vs, marker="." if len(xs) < 50 else None, label=labels.get(i, f"task {i}")[:40])
    ax.set_xlabel(x)
    ax.set_title(f"{metric} per task")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    path = run.plots / "per_task_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _per_task(run: RunDir) -> list[dict[str, Any]]:
    if not run.summary_path.is_file():
        return []
    results = run.read_summary().get("results", {})
    rows = results.get("per_task") if isinstance(results, dict) else None
    return list(rows) if isinstance(rows, list) else []


def _bars(run: RunDir, rows: list[dict[str, Any]]) -> Path:
    import matplotlib.pyplot as plt

    metrics = [m for m in ("success", "return") if any(_finite(r.get(m)) for r in rows)]
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(max(5.0, 0.5 * len(rows)) * len(metrics), 3.4), squeeze=False
    )
    labels = [str(r.get("task", r.get("task_id")))[:18] for r in rows]
    for ax, m in zip(axes[0], metrics, strict=True):
        ax.bar(range(len(rows)), [float(r[m]) if _finite(r.get(m)) else 0.0 for r in rows])
        ax.set_xticks(range(len(rows)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_title(f"final {m} per task")
    fig.tight_layout()
    path = run.plots / "per_task.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False
