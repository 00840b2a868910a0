"""`mtrl plot`: learning curves from metrics.csv and per-task bars from summary.json."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtrl.config import read_toml
from mtrl.errors import MtrlError
from mtrl.runs import RunDir

# what a metrics column means, for titles and axis labels: (title, y label)
COLUMN_NAMES: dict[str, tuple[str, str]] = {
    "eval_success": ("evaluation success", "success rate"),
    "eval_return": ("evaluation return", "mean episode return"),
    "train_return": ("training return", "mean episode return"),
    "train_success": ("training success", "success rate"),
    "pre_return": ("return before adaptation", "mean episode return"),
    "post_return": ("return after adaptation", "mean episode return"),
    "meta_loss": ("meta-training loss", "query MSE"),
    "critic_loss": ("critic loss", "TD loss"),
    "actor_loss": ("actor loss", "loss"),
    "alpha": ("entropy temperature", "alpha"),
    "loss": ("loss", "loss"),
}
X_NAMES = {"step": "env steps", "iteration": "meta-iterations", "episode": "episodes"}


def column_name(column: str) -> tuple[str, str]:
    """Title and y label of a metrics column (``return/3`` -> task 3's return)."""
    if column in COLUMN_NAMES:
        return COLUMN_NAMES[column]
    metric, _, task = column.partition("/")
    if task:
        return f"{metric} of task {task}", metric
    return column.replace("_", " "), column.replace("_", " ")


def short_task_labels(tasks: Sequence[str], ids: Sequence[int], width: int = 30) -> list[str]:
    """``"3: goal=(0.14,-0.23)"`` for ``navigation2d[goal=(0.14,-0.23)]``: the family is
    dropped when every task shares it, the id leads, long names end in an ellipsis."""
    families = {t.split("[", 1)[0] for t in tasks if "[" in t}
    out = []
    for tid, task in zip(ids, tasks, strict=True):
        name = task
        if len(families) == 1 and "[" in task and task.endswith("]"):
            name = task.split("[", 1)[1][:-1]
        text = f"{tid}: {name}"
        out.append(text if len(text) <= width else text[: width - 1] + "…")
    return out


def _style_axes(ax: Any, x: str, ylabel: str) -> None:
    from matplotlib.ticker import EngFormatter, MaxNLocator

    ax.set_xlabel(X_NAMES.get(x, x))
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    if x == "step":
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 20k, 1.5M
    if ylabel == "success rate":
        ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)


def run_title(run: RunDir, kind: str) -> str:
    """``runs/nav (mtsac on navigation2d, seed 0)`` for figure titles."""
    try:
        cfg = read_toml(run.config_path)
    except (OSError, ValueError):
        cfg = {}
    env = cfg.get("env", {}).get("name") if isinstance(cfg.get("env"), dict) else None
    bits = [kind] + ([f"on {env}"] if env else [])
    seed = cfg.get("seed")
    return f"{run.path.name} ({' '.join(bits)}" + (f", seed {seed})" if seed is not None else ")")


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
    run: RunDir,
    kind: str,
    curves: tuple[str, list[str]] = ("step", []),
    columns: Sequence[str] = (),
    task_labels: dict[int, str] | None = None,
) -> list[Path]:
    """Write ``plots/curves.png`` (x column and default y columns: ``curves``, the kind's),
    ``plots/per_task_curves.png`` when metrics.csv has per-task columns
    (``success/<id>``, else ``return/<id>``) and ``plots/per_task.png`` when the
    summary has per-task results; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = run.read_metrics()
    if not rows:
        raise MtrlError(f"{run.path} has no metrics.csv rows yet; nothing to plot")
    x, default = curves
    known = set().union(*(r.keys() for r in rows))
    ys = list(columns) or [c for c in default if c in known and _series(rows, x, c)[0]]
    missing = [c for c in ys if c not in known]
    if missing:
        raise MtrlError(f"no column {missing} in metrics.csv; columns: {sorted(known)}")
    if not ys:
        raise MtrlError(f"pick columns to plot with --y; columns: {sorted(known)}")
    run.plots.mkdir(exist_ok=True)
    title = run_title(run, kind)
    fig, axes = plt.subplots(1, len(ys), figsize=(4.4 * len(ys), 3.6), squeeze=False)
    for ax, col in zip(axes[0], ys, strict=True):
        xs, vs = _series(rows, x, col)
        ax.plot(xs, vs, marker="." if len(xs) < 50 else None)
        name, ylabel = column_name(col)
        ax.set_title(name)
        _style_axes(ax, x, ylabel)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = [run.plots / "curves.png"]
    fig.savefig(out[0], dpi=110)
    plt.close(fig)
    per_task = _per_task(run)
    task_curves = _per_task_curves(run, rows, x, per_task, task_labels or {}, title)
    if task_curves is not None:
        out.append(task_curves)
    if per_task:
        out.append(_bars(run, per_task, title))
    return out


def _per_task_curves(
    run: RunDir,
    rows: list[dict[str, str]],
    x: str,
    per_task: list[dict[str, Any]],
    task_labels: dict[int, str],
    title: str,
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
    names = dict(task_labels)
    names.update({int(r["task_id"]): str(r["task"]) for r in per_task if r.get("task")})
    ids = list(series)
    labels = short_task_labels([names.get(i, f"task {i}") for i in ids], ids, width=40)
    fig, ax = plt.subplots(figsize=(8.0, 4.2))
    for (xs, vs), label in zip(series.values(), labels, strict=True):
        ax.plot(xs, vs, marker="." if len(xs) < 50 else None, label=label)
    ax.set_title(f"evaluation {metric} per task")
    _style_axes(ax, x, "success rate" if metric == "success" else "mean episode return")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(title, fontsize=10)
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


def _bars(run: RunDir, rows: list[dict[str, Any]], title: str) -> Path:
    import matplotlib.pyplot as plt

    metrics = [m for m in ("success", "return") if any(_finite(r.get(m)) for r in rows)]
    width = max(5.0, 0.45 * len(rows) + 2.0)
    fig, axes = plt.subplots(1, len(metrics), figsize=(width * len(metrics), 4.2), squeeze=False)
    ids = [int(r.get("task_id", i)) for i, r in enumerate(rows)]
    labels = short_task_labels([str(r.get("task", r.get("task_id"))) for r in rows], ids)
    many = len(rows) > 12
    for ax, m in zip(axes[0], metrics, strict=True):
        ax.bar(range(len(rows)), [float(r[m]) if _finite(r.get(m)) else 0.0 for r in rows])
        ax.set_xticks(
            range(len(rows)),
            [str(i) for i in ids] if many else labels,
            rotation=0 if many else 35,
            ha="center" if many else "right",
            fontsize=7 if many else 8,
        )
        ax.set_xlabel("task id" if many else "task")
        ax.set_ylabel("success rate" if m == "success" else "mean episode return")
        if m == "success":
            ax.set_ylim(0, 1.05)
        ax.set_title(f"final evaluation {m} per task")
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title, fontsize=10)
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
