"""`mtrl adapt`: few-shot adaptation curves on held-out tasks, against baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtrl.runs import RunDir, dump_json
from mtrl.tables import format_table


def adapt_regression(
    run: RunDir,
    recipe: Any,
    max_steps: int,
    num_tasks: int,
    pretrain_iterations: int | None,
    seed: int,
) -> dict[str, Any]:
    """Query MSE before and after 1..max_steps inner steps on the held-out sine tasks
    (the recipe's ``eval.tasks``; ``num_tasks`` is MAML-RL's and unused here).

    Baselines adapt with the recipe's fixed inner loop: a randomly initialised network,
    and the same network pretrained on pooled tasks by plain regression
    (``pretrain_iterations``, 2000 when None).
    """
    if pretrain_iterations is None:
        pretrain_iterations = 2000
    from mtrl.kinds.sine import (
        adaptation_curve,
        eval_tasks,
        load_learner,
        pretrain_baseline,
        random_baseline,
    )

    batch = eval_tasks(recipe)
    learners = {f"{recipe.meta.algorithm} (meta-learned)": load_learner(run, recipe)}
    if pretrain_iterations > 0:
        learners["pretrained on pooled tasks"] = pretrain_baseline(
            recipe, pretrain_iterations, seed
        )
    learners["random init"] = random_baseline(recipe, seed)
    curves = {name: adaptation_curve(lr, batch, max_steps) for name, lr in learners.items()}
    return {
        "metric": "mse",
        "lower_is_better": True,
        "tasks": recipe.eval.tasks,
        "shots": recipe.shots,
        "pretrain_iterations": pretrain_iterations,
        "curves": curves,
    }


def ci_key(metric: str) -> str:
    """The key of a curve point's 95% CI half-width for ``metric`` (the first metric's
    is ``ci95``; success beside return has ``success_ci95``)."""
    return f"{metric}_ci95" if metric == "success" else "ci95"


def error_bars(
    metric: str, values: list[float], half_widths: list[float]
) -> tuple[list[float], list[float]]:
    """Lengths of the bars below and above each value: the 95% CI's half-width, cut at
    0 and 1 for a success rate (a normal-approximation interval of a rate near 0 or 1
    reaches past them, and a bar below 0 would show an impossible rate)."""
    if metric != "success":
        return list(half_widths), list(half_widths)
    below = [min(h, v) for v, h in zip(values, half_widths, strict=True)]
    above = [min(h, 1.0 - v) for v, h in zip(values, half_widths, strict=True)]
    return below, above


def plot_caption(doc: dict[str, Any]) -> str:
    """What the plot's points and bars are: a mean over the tasks adapted to, with the
    normal-approximation 95% CI over those tasks (not over seeds: one run is one seed)."""
    tasks = doc.get("tasks")
    over = f"{tasks} tasks" if isinstance(tasks, int) else "tasks"
    env = f"{doc['env']}: " if "env" in doc else ""
    return f"{env}mean over {over}, bars 95% CI over tasks (one seed)"


def adaptation_table(doc: dict[str, Any]) -> str:
    """One row per learner, one column per number of inner steps (mean ± 95% CI)."""
    metric = doc["metric"]
    ci = ci_key(metric)
    rows = []
    steps: list[str] = []
    for name, curve in doc["curves"].items():
        row: dict[str, Any] = {"learner": name}
        for point in curve:
            col = f"{point['steps']} {doc.get('x', 'steps')}"
            row[col] = f"{point[metric]:.3f} ± {point[ci]:.3f}"
            if col not in steps:
                steps.append(col)
        rows.append(row)
    return format_table(rows, ["learner", *steps])


def write_adaptation(run: RunDir, doc: dict[str, Any]) -> tuple[Path, Path]:
    """``adapt.json`` and ``plots/adaptation.png`` in the run directory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    json_path = run.path / "adapt.json"
    json_path.write_text(dump_json(doc))
    metric = doc["metric"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, curve in doc["curves"].items():
        xs = [p["steps"] for p in curve]
        ys = [p[metric] for p in curve]
        err = error_bars(metric, ys, [p[ci_key(metric)] for p in curve])
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=name)
    x_label = {"episodes": "episodes of experience on the task before"}
    ax.set_xlabel(x_label.get(doc.get("x", "steps"), "inner gradient steps"))
    tasks = "held-out tasks" if doc.get("held_out", True) else "its tasks (trained on)"
    lower = " (lower is better)" if doc.get("lower_is_better") else ""
    ax.set_ylabel(f"{metric} on {tasks}{lower}")
    ax.set_xticks(sorted({p["steps"] for c in doc["curves"].values() for p in c}))
    ax.set_title(plot_caption(doc), fontsize=8)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    run.plots.mkdir(exist_ok=True)
    png_path = run.plots / "adaptation.png"
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return json_path, png_path
