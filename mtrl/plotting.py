"""`mtrl plot`: learning curves from metrics.csv and per-task bars from summary.json."""

from __future__ import annotations

import math
import textwrap
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


# per-task columns: an evaluation's (return/<id>) and training episodes' (train_*/<id>)
PER_TASK_NAMES = {
    "return": "evaluation return",
    "success": "evaluation success",
    "train_return": "training return",
    "train_success": "training success",
}


def column_name(column: str) -> tuple[str, str]:
    """Title and y label of a metrics column (``return/3`` -> task 3's evaluation
    return, ``train_return/3`` -> its training return)."""
    if column in COLUMN_NAMES:
        return COLUMN_NAMES[column]
    metric, _, task = column.partition("/")
    if task:
        name = PER_TASK_NAMES.get(metric, metric.replace("_", " "))
        return f"{name} of task {task}", name.split(" ")[-1]
    return column.replace("_", " "), column.replace("_", " ")


def short_task_labels(
    tasks: Sequence[str], ids: Sequence[int], width: int | None = 30
) -> list[str]:
    """``"3: goal=(0.14,-0.23)"`` for ``navigation2d[goal=(0.14,-0.23)]``: the family is
    dropped when every task shares it, the id leads, names longer than ``width`` end in
    an ellipsis (None: never cut, as in a legend)."""
    families = {t.split("[", 1)[0] for t in tasks if "[" in t}
    out = []
    for tid, task in zip(ids, tasks, strict=True):
        name = task
        if len(families) == 1 and "[" in task and task.endswith("]"):
            name = task.split("[", 1)[1][:-1]
        text = f"{tid}: {name}"
        out.append(text if width is None or len(text) <= width else text[: width - 1] + "…")
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
    if isinstance(env, list):  # a mixture of families
        env = " + ".join(str(e) for e in env)
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
    summary has per-task results, the two only for more than one task (a single task's
    curves are those of curves.png); returns the written paths."""
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
    if len(per_task) > 1:
        out.append(_bars(run, per_task, title))
    return out


Series = list[tuple[str, list[float], list[float]]]  # (label, xs, values) per task

# one look per task, so no line hides another: 8 markers x 4 line styles
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
STYLES = ("-", "--", ":", "-.")


def evaluation_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The rows an evaluation wrote (``eval_return`` set). Training rows keep their
    per-task values apart (``train_return/<id>``); this keeps the curves honest for run
    directories written before they did."""
    return [r for r in rows if r.get("eval_return", "") != ""]


def per_task_series(rows: list[dict[str, str]], x: str, names: dict[int, str]) -> dict[str, Series]:
    """Per metric (``success``, ``return``), each task's evaluation curve, labelled in
    full (``names``: task id -> label); only the metrics some task has values of."""
    evals = evaluation_rows(rows)
    known = set().union(*(r.keys() for r in evals)) if evals else set()
    out: dict[str, Series] = {}
    for metric in ("success", "return"):
        ids = sorted(
            int(c.split("/", 1)[1])
            for c in known
            if c.startswith(f"{metric}/") and c.split("/", 1)[1].isdigit()
        )
        found = {i: _series(evals, x, f"{metric}/{i}") for i in ids}
        found = {i: xy for i, xy in found.items() if xy[0]}
        labels = short_task_labels([names.get(i, f"task {i}") for i in found], list(found), None)
        if found:
            out[metric] = [(lab, *xy) for lab, xy in zip(labels, found.values(), strict=True)]
    return out


def _wrap(label: str, width: int = 70) -> str:
    """A long task label over several lines, broken after its commas (nothing cut)."""
    return "\n".join(textwrap.wrap(label.replace(",", ", "), width, break_on_hyphens=False))


def _per_task_curves(
    run: RunDir,
    rows: list[dict[str, str]],
    x: str,
    per_task: list[dict[str, Any]],
    task_labels: dict[int, str],
    title: str,
) -> Path | None:
    """Evaluation success and return per task, side by side (a line per task, each with
    its own marker and style; the legend below, labels uncut)."""
    import matplotlib.pyplot as plt

    names = dict(task_labels)
    names.update({int(r["task_id"]): str(r["task"]) for r in per_task if r.get("task")})
    series = per_task_series(rows, x, names)
    if not series or max(len(curves) for curves in series.values()) < 2:
        return None
    first = next(iter(series.values()))
    wrapped = [_wrap(label) for label, _, _ in first]
    ncol = 1 if max(len(w) for w in wrapped) > 45 else min(3, len(first))
    lines = sum(w.count("\n") + 1 for w in wrapped) / ncol
    legend_h = 0.15 * math.ceil(lines) + 0.3  # inches below the axes
    height = 3.6 + legend_h
    fig, axes = plt.subplots(1, len(series), figsize=(5.2 * len(series), height), squeeze=False)
    for ax, (metric, curves) in zip(axes[0], series.items(), strict=True):
        for k, (label, xs, vs) in enumerate(curves):
            look = {"marker": MARKERS[k % 8], "linestyle": STYLES[k // 8 % 4], "markersize": 4}
            ax.plot(xs, vs, label=_wrap(label), markevery=max(1, len(xs) // 12), **look)
        ax.set_title(f"evaluation {metric} per task")
        _style_axes(ax, x, "success rate" if metric == "success" else "mean episode return")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, legend_h / height, 1, 1))
    path = run.plots / "per_task_curves.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")  # the whole legend, however wide
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
