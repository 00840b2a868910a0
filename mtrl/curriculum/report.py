"""What a continual run reports: its task x time success matrix, Continual World's
metrics from it, and the matrix as a heatmap."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from mtrl.curriculum.metrics import continual_metrics
from mtrl.runs import RunDir

# Continual World (Wołczyk et al. 2021, Table 2), CW20 at 1M steps per task:
# average performance, forgetting, forward transfer.
PUBLISHED_CW20: dict[str, tuple[float, float, float]] = {
    "finetune": (0.05, 0.73, 0.20),
    "l2": (0.43, 0.02, -0.73),
    "ewc": (0.60, 0.02, -0.18),
    "mas": (0.51, 0.00, -0.52),
    "packnet": (0.80, 0.00, 0.18),
    "perfect_memory": (0.12, 0.07, -1.34),
    "agem": (0.07, 0.71, 0.15),
}


def continual_report(doc: dict[str, Any], method: str) -> str:
    """Lines for `mtrl eval`: our metrics, per-task forgetting, Continual World's."""

    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    if "error" in doc:
        return f"continual metrics: {doc['error']}"
    ft = doc.get("forward_transfer")
    lines = [
        f"average performance {fmt(doc['average_performance'])}, "
        f"forgetting {fmt(doc['forgetting'])}, forward transfer "
        + (fmt(ft) if "forward_transfer" in doc else "n/a (no reference runs: --reference)"),
        "forgetting per task: " + " ".join(fmt(v) for v in doc["forgetting_per_task"]),
    ]
    if method in PUBLISHED_CW20:
        ap, f, t = PUBLISHED_CW20[method]
        lines.append(
            f"Continual World reports for {method} on CW20 (1M steps/task): "
            f"{ap:.2f} / {f:.2f} / {t:.2f}"
        )
    return "\n".join(lines)


def success_matrix(run: RunDir, num_tasks: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(steps [evals], success [evals, tasks])`` from the run's evaluation rows."""
    steps, rows = [], []
    for row in run.read_metrics():
        if not row.get("eval_success") and not row.get("success/0"):
            continue
        n = num_tasks
        if n is None:
            n = sum(1 for k in row if k.startswith("success/") and row[k] != "")
        values = [row.get(f"success/{t}", "") for t in range(n)]
        if any(v == "" for v in values):
            continue
        steps.append(int(float(row["step"])))
        rows.append([float(v) for v in values])
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, num_tasks or 0))
    return np.asarray(steps, dtype=np.int64), np.asarray(rows, dtype=np.float64)


def continual_results(
    run: RunDir, steps_per_task: int, reference_auc: list[float] | None = None
) -> dict[str, Any]:
    """Continual World's metrics of a run (forward transfer given reference AUCs)."""
    steps, success = success_matrix(run)
    if len(steps) == 0 or np.isnan(success).all():
        return {"error": "no evaluation with per-task success yet"}
    if steps[0] > steps_per_task:
        return {"error": "no evaluation before the end of the first task; lower eval_every"}
    out = continual_metrics(success, steps, steps_per_task, reference_auc)
    out["steps"] = steps.tolist()
    out["success"] = success.tolist()
    return {k: _clean(v) for k, v in out.items()}


def _clean(value: Any) -> Any:
    """NaN -> None so the summary stays strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def plot_success_heatmap(
    steps: np.ndarray,
    success: np.ndarray,
    labels: list[str],
    steps_per_task: int,
    path: str | Path,
    title: str = "",
) -> Path:
    """Tasks (rows, in sequence order) x evaluation time (columns), success in colour,
    with dashed lines where each task's training starts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = success.shape[1]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.18 * len(steps) + 3.0), 0.45 * n + 1.8))
    edges = np.concatenate([[0], steps]) / 1e3
    im = ax.pcolormesh(edges, np.arange(n + 1), success.T, cmap="viridis", vmin=0.0, vmax=1.0)
    for i in range(1, n):
        ax.axvline(i * steps_per_task / 1e3, color="white", ls="--", lw=0.8)
    ax.set_yticks(np.arange(n) + 0.5)
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("env steps (thousands)")
    ax.set_title(title or "success rate per task over the sequence")
    fig.colorbar(im, ax=ax, label="success rate")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_mastery(doc: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Steps to master the target tasks per variant of a comparison: each seed a dot
    (hollow: not mastered within its budget, drawn at the budget), the median a bar
    with its bootstrap CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = [v for v in doc["variants"] if "mastery" in v]
    fig, ax = plt.subplots(figsize=(7.0, 0.7 * len(variants) + 1.6))
    for i, v in enumerate(variants):
        m = v["mastery"]
        ax.barh(i, m["median_steps"] / 1e3, color="tab:blue", alpha=0.35, height=0.6)
        ax.errorbar(
            m["median_steps"] / 1e3,
            i,
            xerr=[[(m["median_steps"] - m["low"]) / 1e3], [(m["high"] - m["median_steps"]) / 1e3]],
            color="black",
            capsize=4,
        )
        flags = m.get("per_seed_mastered", [True] * len(m["per_seed"]))
        jitter = np.linspace(-0.18, 0.18, len(m["per_seed"]))
        for s, ok, dy in zip(m["per_seed"], flags, jitter, strict=True):
            ax.plot(
                s / 1e3,
                i + dy,
                "o",
                color="tab:blue",
                markerfacecolor="tab:blue" if ok else "white",
                markersize=6,
            )
    ax.set_yticks(range(len(variants)))
    ax.set_yticklabels(
        [f"{v['label']}  ({v['mastery']['mastered']}/{v['mastery']['runs']})" for v in variants],
        fontsize=8,
    )
    ax.invert_yaxis()
    ax.set_xlabel("env steps to master the target task (thousands)")
    ax.set_title(
        title or "median steps to mastery, 95% bootstrap CI; hollow: not mastered", fontsize=9
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
