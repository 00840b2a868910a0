"""`mtrl compare`: train variants of one recipe over several seeds and compare them.

Variants come from ``--vary KEY=V1,V2`` options (their cartesian product; ``K1+K2=...``
ties several keys to the same value, e.g. the actor's and the critic's architecture).
Each (variant, seed) trains into ``OUT/<variant>/seed_<s>``; finished runs are reused
and interrupted ones resumed, so re-running the command continues a comparison.
Scores are the final per-task evaluation (success where the env reports it, else
return; ``metric`` picks one): per variant the mean and IQM over all (seed, task)
scores with stratified bootstrap CIs, written to ``OUT/compare.json``,
``OUT/compare.md`` and a bar plot. Continual runs add Continual World's metrics and
curriculum runs the steps to master their target tasks, over seeds.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import textwrap
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from mtrl.config import read_toml, to_dict
from mtrl.curves import arm_bands, plot_bands
from mtrl.errors import ConfigError, MtrlError
from mtrl.jobs import Job, RecipeSource
from mtrl.pool_exec import run_in_pool, run_in_turn
from mtrl.recipes import parse_recipe
from mtrl.runs import RunDir, RunLock, dump_json, package_versions
from mtrl.stats import bootstrap_ci, iqm, probability_of_improvement, stratified_bootstrap_ci
from mtrl.sweep_progress import Metric, SweepProgress, number, scores
from mtrl.tables import format_table


@dataclass(frozen=True)
class Variant:
    """One point of the grid: a label and the ``key=value`` overrides that make it."""

    label: str
    overrides: tuple[str, ...]


def _literal(value: Any) -> str:
    """``value`` as a TOML literal for an override."""
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


class Paired(tuple[Any, ...]):
    """One value per key of a paired ``--vary`` axis (``k1|k2=a|b,c|d``)."""


def _toml_value(item: str) -> Any:
    try:
        return tomllib.loads(f"v = {item}")["v"]
    except tomllib.TOMLDecodeError:
        return item


def _parse_paired(text: str, key_part: str, raw: str) -> tuple[list[str], list[Any]]:
    keys = [k.strip() for k in key_part.split("|")]
    if any(not k for k in keys) or "+" in key_part:
        raise ConfigError(f"--vary {text!r}: paired keys look like k1|k2=a|b,c|d")
    values: list[Any] = []
    for item in raw.split(","):
        parts = [p.strip() for p in item.split("|")]
        if len(parts) != len(keys) or any(not p for p in parts):
            raise ConfigError(
                f"--vary {text!r}: {item.strip()!r} needs {len(keys)} values separated by '|' "
                f"(one per key: {', '.join(keys)})"
            )
        values.append(Paired(_toml_value(p) for p in parts))
    return keys, values


def parse_vary(text: str) -> tuple[list[str], list[Any]]:
    """``"a.b+c.d=v1,v2"`` -> (keys, values): tied keys take each value together.
    ``"a.b|c.d=v1|w1,v2|w2"`` pairs values with keys (one variant per pair). Values are
    TOML literals (else bare strings); a whole TOML array (``k=[[64,64],[400,400]]``)
    gives its elements."""
    if "=" not in text:
        raise ConfigError(f"--vary {text!r} must look like key=v1,v2 (e.g. sac.tau=0.01,0.005)")
    key_part, raw = text.split("=", 1)
    if "|" in key_part:
        keys, values = _parse_paired(text, key_part, raw)
        if "seed" in keys:
            raise ConfigError("--vary seed=...: every variant runs seeds 0..N-1; use --seeds N")
        return keys, values
    keys = [k.strip() for k in key_part.split("+") if k.strip()]
    if not keys:
        raise ConfigError(f"--vary {text!r} has no key")
    if "seed" in keys:
        raise ConfigError("--vary seed=...: every variant runs seeds 0..N-1; use --seeds N")
    try:
        whole = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        whole = None
    if isinstance(whole, list):
        values = list(whole)
    else:
        values = [_toml_value(item.strip()) for item in raw.split(",")]
    if not values or any(v == "" for v in values):
        raise ConfigError(f"--vary {text!r} needs at least one non-empty value")
    return keys, values


def variants(varies: Sequence[str]) -> list[Variant]:
    """The cartesian product of the ``--vary`` options (one empty variant without any)."""
    axes = [parse_vary(v) for v in varies]
    paired = [bool(values) and isinstance(values[0], Paired) for _, values in axes]
    names = _axis_names([keys for keys, _ in axes], paired)
    out = []
    for combo in itertools.product(
        *[
            [(name, keys, v) for v in values]
            for name, (keys, values) in zip(names, axes, strict=True)
        ]
    ):
        label = ",".join(f"{name}={_short(v)}" for name, _, v in combo) or "base"
        overrides = tuple(
            f"{k}={_literal(x)}"
            for _, keys, v in combo
            for k, x in (
                zip(keys, v, strict=True) if isinstance(v, Paired) else ((k, v) for k in keys)
            )
        )
        out.append(Variant(label, overrides))
    labels = [v.label for v in out]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"--vary gives repeated variants: {labels}")
    return out


def _axis_names(axes: list[list[str]], paired: list[bool]) -> list[str]:
    """Short names for labels: the last key component when the tied keys share it
    (``sac.actor.arch+sac.critic.arch`` -> ``arch``), the last components of paired
    keys (``curriculum.unlock|curriculum.sampler`` -> ``unlock|sampler``), as long as
    no two axes collide."""
    short = []
    for keys, pairs in zip(axes, paired, strict=True):
        lasts = {k.rsplit(".", 1)[-1] for k in keys}
        if pairs:
            short.append("|".join(k.rsplit(".", 1)[-1] for k in keys))
            continue
        short.append(lasts.pop() if len(lasts) == 1 else "+".join(keys))
    if len(set(short)) == len(short):
        return short
    return ["|".join(keys) if p else "+".join(keys) for keys, p in zip(axes, paired, strict=True)]


def _short(value: Any) -> str:
    if isinstance(value, Paired):
        return "|".join(_short(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def slug(label: str) -> str:
    """A directory name for a variant label."""
    return re.sub(r"[^A-Za-z0-9_.=,+-]+", "_", label)[:120]


def summarize_variant(
    runs: Sequence[Sequence[dict[str, Any]]], seed: int = 0, metric: Metric = "auto"
) -> dict[str, Any]:
    """Mean and IQM (with stratified bootstrap CIs) of the ``[seeds, tasks]`` scores of
    one variant, plus per-task means over seeds."""
    metrics = {scores(r, metric)[0] for r in runs}
    metric = "success" if metrics == {"success"} else "return"
    matrix = np.array(
        [[number(row.get(metric)) for row in r] for r in runs], dtype=np.float64
    )  # [seeds, tasks]
    lo, hi = stratified_bootstrap_ci(matrix, "mean", seed=seed)
    ilo, ihi = stratified_bootstrap_ci(matrix, "iqm", seed=seed)
    per_task = [
        {
            "task_id": row.get("task_id", i),
            "task": row.get("task", ""),
            metric: float(matrix[:, i].mean()),
        }
        for i, row in enumerate(runs[0])
    ]
    return {
        "metric": metric,
        "seeds": len(runs),
        "tasks": matrix.shape[1],
        "mean": float(matrix.mean()),
        "mean_low": lo,
        "mean_high": hi,
        "iqm": iqm(matrix),
        "iqm_low": ilo,
        "iqm_high": ihi,
        "per_seed_mean": [float(m) for m in matrix.mean(axis=1)],
        "per_task": per_task,
        "scores": matrix.tolist(),  # [seeds, tasks]
    }


def add_improvement(variant_docs: list[dict[str, Any]]) -> None:
    """Each variant's probability of improvement over the first one (same tasks)."""
    if len(variant_docs) < 2:
        return
    first = np.asarray(variant_docs[0]["scores"], dtype=np.float64)
    for v in variant_docs[1:]:
        mine = np.asarray(v["scores"], dtype=np.float64)
        if mine.shape[1] == first.shape[1] and np.isfinite(mine).all() and np.isfinite(first).all():
            v["p_improve_vs_first"] = probability_of_improvement(mine, first)


CONTINUAL_METRICS = ("average_performance", "forgetting", "forward_transfer")


def _mean_ci(values: Sequence[float], seed: int) -> dict[str, Any]:
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if arr.size == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    lo, hi = bootstrap_ci(arr, "mean", seed=seed)
    return {"mean": float(arr.mean()), "low": lo, "high": hi, "n": int(arr.size)}


def steps_to_mastery(result: Mapping[str, Any]) -> tuple[float, bool]:
    """A curriculum run's env steps to master all its target tasks, and whether it did
    (a run that never did counts its full steps)."""
    reached = [t["mastered_at"] for t in result["curriculum"] if t.get("target", True)]
    if all(m >= 0 for m in reached):
        return float(max(reached)), True
    return float(result["steps"]), False


def summarize_lifelong(results: Sequence[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Continual World's metrics (mean and bootstrap CI over seeds) of continual runs,
    and steps to mastery of the target tasks (median over seeds, bootstrap CI; runs
    that never master count as their full budget) of curriculum runs."""
    out: dict[str, Any] = {}
    if results and all(isinstance(r.get("continual"), dict) for r in results):
        cont = [r["continual"] for r in results]
        out["continual"] = {
            m: _mean_ci([c.get(m) for c in cont], seed)
            for m in CONTINUAL_METRICS
            if any(c.get(m) is not None for c in cont)
        }
    curricula = all(isinstance(r.get("curriculum"), list) for r in results)
    if results and curricula and "continual" not in out:  # a sequence has no target
        steps, flags = zip(*(steps_to_mastery(r) for r in results), strict=True)
        mastered = sum(flags)
        lo, hi = bootstrap_ci(steps, "median", seed=seed)
        out["mastery"] = {
            "median_steps": float(np.median(steps)),
            "low": lo,
            "high": hi,
            "mastered": mastered,
            "runs": len(results),
            "per_seed": list(steps),
            "per_seed_mastered": list(flags),
        }
    return out


def lifelong_table(doc: dict[str, Any]) -> str:
    """The continual and curriculum tables of a comparison ('' when it has neither)."""

    def cell(m: dict[str, Any]) -> str:
        if m.get("mean") is None:
            return "-"
        return f"{m['mean']:.3f} [{m['low']:.3f}, {m['high']:.3f}]"

    parts = []
    cont = [v for v in doc["variants"] if "continual" in v]
    if cont:
        rows = [
            {
                "variant": v["label"],
                **{m: cell(v["continual"].get(m, {})) for m in CONTINUAL_METRICS},
            }
            for v in cont
        ]
        parts.append(format_table(rows, ["variant", *CONTINUAL_METRICS]))
    cur = [v for v in doc["variants"] if "mastery" in v]
    if cur:
        rows = [
            {
                "variant": v["label"],
                "median steps to mastery [95% CI]": (
                    f"{v['mastery']['median_steps']:.0f} "
                    f"[{v['mastery']['low']:.0f}, {v['mastery']['high']:.0f}]"
                ),
                "mastered": f"{v['mastery']['mastered']}/{v['mastery']['runs']}",
                "per seed": " ".join(f"{s:.0f}" for s in v["mastery"]["per_seed"]),
            }
            for v in cur
        ]
        cols = ["variant", "median steps to mastery [95% CI]", "mastered", "per seed"]
        parts.append(format_table(rows, cols))
    return "\n\n".join(parts)


def compare_table(doc: dict[str, Any]) -> str:
    rows = [
        {
            "variant": v["label"],
            "metric": v["metric"],
            "mean [95% CI]": f"{v['mean']:.3f} [{v['mean_low']:.3f}, {v['mean_high']:.3f}]",
            "IQM [95% CI]": f"{v['iqm']:.3f} [{v['iqm_low']:.3f}, {v['iqm_high']:.3f}]",
            "per seed": " ".join(f"{m:.3f}" for m in v["per_seed_mean"]),
            "P(> first)": f"{v['p_improve_vs_first']:.2f}" if "p_improve_vs_first" in v else "",
        }
        for v in doc["variants"]
    ]
    cols = ["variant", "metric", "mean [95% CI]", "IQM [95% CI]", "per seed"]
    if any("p_improve_vs_first" in v for v in doc["variants"]):
        cols.append("P(> first)")
    extra = lifelong_table(doc)
    return format_table(rows, cols) + (f"\n\n{extra}" if extra else "")


def _check_comparable(kind: Any, cfg: Any, name: str) -> None:
    """A run compares by its per-task results: a multi-task policy's evaluation, or a
    meta-RL run's report on held-out tasks (which its recipe must ask for)."""
    from mtrl.recipes import kinds_that

    held_out = getattr(cfg, "held_out", None)
    if kind.evaluates or (held_out is not None and held_out.tasks > 0):
        return
    if held_out is not None:
        raise ConfigError(
            f"{name}: a {kind.name!r} run compares by its report on held-out tasks; set "
            "held_out.tasks (e.g. --set held_out.tasks=40) and held_out.steps"
        )
    raise ConfigError(
        f"mtrl compare needs a recipe of kind {', '.join(kinds_that(True))}, or a meta-RL "
        f"kind with held_out.tasks; {name} is {kind.name!r}"
    )


def plan(
    recipe: RecipeSource,
    grid: Sequence[Variant],
    seeds: Sequence[int],
    out_dir: str | Path,
    base_overrides: Sequence[str] = (),
) -> list[Job]:
    """Every (variant, seed) job, each config validated before anything trains.
    Seed-major order: a comparison stopped part-way has every arm at the same seeds."""
    jobs = []
    for s in seeds:
        for v in grid:
            overrides = (*base_overrides, *v.overrides, f"seed={s}")
            kind, cfg = recipe.load(overrides)
            _check_comparable(kind, cfg, recipe.name)
            run_dir = Path(out_dir) / slug(v.label) / f"seed_{s}"
            jobs.append(Job(v.label, s, overrides, run_dir, _action(run_dir, to_dict(cfg))))
    return jobs


def _same_comparison(out: Path, base: dict[str, Any]) -> None:
    """One comparison per --out: another recipe or other --set values (its resolved
    base recipe, ``base``) would overwrite its compare.json; more seeds or variants
    extend it."""
    path = out / "compare.json"
    if not path.is_file():
        return
    doc = json.loads(path.read_text())
    stored = resolved(doc["config"], str(path)) if "config" in doc else None
    differ = differing_keys(stored, base) if stored is not None else ["recipe"]
    if differ:
        shown = ", ".join(differ[:6]) + (", ..." if len(differ) > 6 else "")
        raise ConfigError(
            f"{out} holds another comparison ({doc.get('recipe')} with --set "
            f"{' '.join(doc.get('overrides', [])) or 'none'}; it differs in {shown}); "
            "use another --out for this one"
        )


def resolved(table: dict[str, Any], source: str) -> dict[str, Any]:
    """A stored recipe table with the defaults of today's options filled in, so a run
    (or comparison) written before an option existed matches a recipe that leaves it at
    its default (which keeps the old behaviour); the table as stored when it no longer
    parses (a removed key), so the comparison names what differs."""
    try:
        return to_dict(parse_recipe(dict(table), source)[1])
    except (MtrlError, ValueError, TypeError):
        return table


def _action(run_dir: Path, wanted: dict[str, Any]) -> str:
    """What to do with a job's run directory. A run is its full resolved recipe (its
    config.toml): one trained with other settings is refused, naming the keys that
    differ; one that never reached a checkpoint (killed early) starts over."""
    config = run_dir / "config.toml"
    if not config.is_file():
        if run_dir.is_dir() and not RunDir.unstarted(run_dir):
            raise ConfigError(
                f"{run_dir} is not a run directory of mtrl's; remove it or use another --out"
            )
        return "train"
    differ = differing_keys(resolved(read_toml(config), str(config)), wanted)
    if differ:
        shown = ", ".join(differ[:6]) + (", ..." if len(differ) > 6 else "")
        raise ConfigError(
            f"{run_dir} was trained with other settings ({shown}); comparing it would mix "
            "settings: use another --out, or remove it to retrain"
        )
    if (run_dir / "summary.json").is_file():
        return "reuse"
    return "resume"  # from its newest checkpoint, or from the start if it has none


def version_changes(then: Mapping[str, str], now: Mapping[str, str]) -> str:
    """``"torch 2.12.0 (now 2.13.0), ..."`` for the packages whose version differs
    ('' when none does, or the run recorded none)."""
    moved = [f"{k} {then[k]} (now {now[k]})" for k in now if k in then and then[k] != now[k]]
    return ", ".join(moved)


def differing_keys(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested tables (missing on one
    side counts), in sorted order."""
    out = []
    for key in sorted(set(a) | set(b)):
        x, y, name = a.get(key), b.get(key), f"{prefix}{key}"
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            out += differing_keys(x, y, f"{name}.")
        elif x != y:
            out.append(name)
    return out


def _more_results(
    recipe: RecipeSource, job: Job, train: bool, log: Callable[[str], None]
) -> dict[str, Any]:
    """What a run's kind reports beside the per-task table (continual: Continual
    World's metrics, forward transfer where the reference runs are cached or, with
    ``train``, trained)."""
    kind, cfg = recipe.load(job.overrides)
    if kind.more_results is None:
        return {}
    return kind.more_results(RunDir.open(job.run_dir), cfg, train, log)


def _execute(
    recipe: RecipeSource, pending: list[Job], how: Execution, progress: SweepProgress
) -> dict[tuple[str, int], dict[str, Any]]:
    """Train or resume ``pending``: one after another, ``jobs`` at a time in worker
    processes, or as Ray tasks; each job's results by (label, seed)."""
    if not pending:
        return {}
    if how.executor == "ray":
        from mtrl.ray_exec import run_jobs_on_ray

        return run_jobs_on_ray(recipe, pending, how.address, progress)
    if how.jobs == 1:
        return run_in_turn(recipe, pending, progress)
    return run_in_pool(recipe, pending, how.jobs, progress)


@dataclass(frozen=True)
class Execution:
    """How a comparison trains its runs and reads their scores."""

    jobs: int = 1  # runs at a time, in worker processes
    executor: str = "local"  # or "ray": each run a Ray task
    address: str | None = None  # ray: the cluster (None: a local one)
    metric: Metric = "auto"
    reference: bool = False  # continual: train the missing reference runs


def run_compare(
    recipe_path: str | Path,
    varies: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | Path,
    base_overrides: Sequence[str] = (),
    log: Callable[[str], None] = lambda _: None,
    jobs: int = 1,
    metric: Metric = "auto",
    reference: bool = False,
    executor: str = "local",
    address: str | None = None,
) -> dict[str, Any]:
    """Train (or reuse) every (variant, seed) run, ``jobs`` at a time in worker
    processes (``executor = "ray"``: as Ray tasks on the cluster at ``address``), then
    write the comparison. Everything is checked before anything trains, and one
    compare at a time writes ``out_dir``."""
    if not seeds:
        raise ConfigError("give at least one seed")
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    if executor not in ("local", "ray"):
        raise ConfigError(f"executor must be 'local' or 'ray', got {executor!r}")
    out, recipe = Path(out_dir), RecipeSource.read(recipe_path)  # read once for the sweep
    grid = variants(varies)
    base = to_dict(recipe.load(base_overrides)[1])
    _same_comparison(out, base)
    todo = plan(recipe, grid, seeds, out, base_overrides)
    out.mkdir(parents=True, exist_ok=True)
    lock = RunLock(
        out / ".lock",
        note=f"mtrl compare {recipe.name}",
        advice="wait for that comparison to finish or stop it, or use another --out",
    )
    try:
        how = Execution(jobs, executor, address, metric, reference)
        variant_docs = _compare(recipe, grid, seeds, todo, how, log)
        doc = {
            "recipe": recipe.name,
            "overrides": list(base_overrides),
            "config": base,  # the comparison's identity: its resolved base recipe
            "seeds": list(seeds),
            "variants": variant_docs,
        }
        _write(doc, out)
    finally:
        lock.release()
    return doc


def _compare(
    recipe: RecipeSource,
    grid: list[Variant],
    seeds: Sequence[int],
    todo: list[Job],
    how: Execution,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Train what ``todo`` lacks, then summarize each variant over ``seeds``."""
    per_task: dict[tuple[str, int], dict[str, Any]] = {}
    pending = []
    now = package_versions()
    for job in todo:
        if job.action != "reuse":
            pending.append(job)
            continue
        summary = RunDir.open(job.run_dir).read_summary()
        log(f"{job.label} seed {job.seed}: finished, reusing {job.run_dir}")
        moved = version_changes(summary.get("versions", {}), now)
        if moved:
            log(
                f"  note: it was trained with {moved}; its numbers stand as they are "
                "(remove the run directory to retrain it with these versions)"
            )
        per_task[job.label, job.seed] = summary["results"]
    progress = SweepProgress(pending, log, how.metric, slots=how.jobs)
    per_task.update(_execute(recipe, pending, how, progress))
    for job in todo:  # e.g. continual runs' metrics, from cached reference runs
        per_task[job.label, job.seed] |= _more_results(recipe, job, how.reference, log)
    results = {v.label: [per_task[v.label, s] for s in seeds] for v in grid}
    variant_docs = [
        {
            "label": v.label,
            "overrides": list(v.overrides),
            **summarize_variant([r["per_task"] for r in results[v.label]], metric=how.metric),
            **summarize_lifelong(results[v.label]),
        }
        for v in grid
    ]
    add_improvement(variant_docs)
    return variant_docs


def _write(doc: dict[str, Any], out: Path) -> None:
    """compare.json, compare.md, compare.png, compare_curves.png (each variant's
    evaluations against env steps over seeds) and the mastery plot for curricula."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(dump_json(doc))
    (out / "compare.md").write_text(compare_table(doc) + "\n")
    _plot(doc, out / "compare.png")
    _plot_curves(doc, out)
    if any("mastery" in v for v in doc["variants"]):
        from mtrl.curriculum.report import plot_mastery

        plot_mastery(doc, out / "compare_mastery.png")


def _plot_curves(doc: dict[str, Any], out: Path) -> None:
    """``compare_curves.png`` where the runs log evaluations of the compared metric
    (``eval_success`` / ``eval_return``) at two steps or more; kinds that log none, or
    runs evaluated only at the end, get no curve plot (the bars show that point)."""
    vs = doc["variants"]
    column = f"eval_{vs[0]['metric']}"
    arms = {v["label"]: [out / slug(v["label"]) / f"seed_{s}" for s in doc["seeds"]] for v in vs}
    bands = arm_bands(arms, column)
    env = doc.get("config", {}).get("env")  # a table, or a meta-RL kind's family name
    env = env.get("name") if isinstance(env, dict) else env
    varied = any(o.startswith("env.") for v in vs for o in v["overrides"])
    title = doc["recipe"] + (f" on {env}" if isinstance(env, str) and not varied else "")
    if any(band.x.size > 1 for band in bands.values()):
        plot_bands(bands, column, out / "compare_curves.png", title)


def tick_label(label: str, width: int = 24) -> str:
    """A variant label as lines under its bar: one ``key=value`` a line (a paired
    axis ``k1|k2=a|b`` as ``k1=a`` and ``k2=b``), each wrapped at ``width``, so no
    value is cut off."""
    lines = []
    for part in label.split(","):
        keys, _, values = part.partition("=")
        ks, vals = keys.split("|"), values.split("|")
        if len(ks) > 1 and len(ks) == len(vals):
            lines += [f"{k}={v}" for k, v in zip(ks, vals, strict=True)]
        else:
            lines.append(part)
    return "\n".join(textwrap.fill(line, width, break_on_hyphens=False) for line in lines)


def _plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vs = doc["variants"]
    labels = [tick_label(v["label"]) for v in vs]
    widest = max(len(line) for label in labels for line in label.splitlines())
    per_bar = max(1.2, 0.07 * widest + 0.3)  # room for the widest label line at 7 pt
    fig, ax = plt.subplots(figsize=(max(4.0, per_bar * len(vs)), 3.6))
    x = np.arange(len(vs))
    values = np.array([v["iqm"] for v in vs])
    err = np.array([[v["iqm"] - v["iqm_low"] for v in vs], [v["iqm_high"] - v["iqm"] for v in vs]])
    ax.bar(x, values, yerr=err, capsize=4)
    for xi, v in zip(x, values, strict=True):  # the value beside its bar (an IQM of 0 shows)
        ax.text(xi + 0.08, v, f"{v:.3g}", ha="left", va="bottom", fontsize=8)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_title(f"IQM {vs[0]['metric']}\n(95% stratified bootstrap CI)", fontsize=10)
    ax.set_ylabel(f"final {vs[0]['metric']}, IQM over seeds x tasks")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
