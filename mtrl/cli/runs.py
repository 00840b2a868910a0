"""`mtrl train|eval|adapt|plot|record`: making and using run directories."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from inspect import signature
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtrl.cli.texts import RECIPES_HELP, SET_HELP
from mtrl.errors import DiskFullError, MtrlError, disk_full
from mtrl.runs import dump_json, warn

if TYPE_CHECKING:
    from mtrl.recipes import RecipeKind


def _what_to_train(args: argparse.Namespace) -> tuple[RecipeKind, Any, Path, bool] | None:
    """The kind, recipe, run directory and whether it resumes; ``None`` (after printing
    its results) for ``--resume`` of a finished run."""
    from mtrl.recipes import default_run_dir, load_recipe, load_run

    sets = list(args.set)
    if args.seed is not None:
        sets.append(f"seed={args.seed}")
    if args.device is not None:
        sets.append(f"device={json.dumps(args.device)}")
    if not args.resume:
        if not args.recipe:
            raise MtrlError("give a RECIPE.toml to train, or --resume RUN_DIR")
        kind, cfg = load_recipe(args.recipe, sets)
        return kind, cfg, Path(args.run_dir or default_run_dir(args.recipe)), False
    if args.recipe or sets or args.init_from:
        raise MtrlError(
            "--resume RUN_DIR continues RUN_DIR with its stored recipe; drop RECIPE/--set/"
            "--seed/--device/--init-from (to change settings, start a new run from its "
            "weights: "
            f"mtrl train RECIPE --init-from {args.resume} --set KEY=VALUE)"
        )
    run, kind, cfg = load_run(args.resume)
    if run.summary_path.is_file():  # nothing left to train
        done = run.read_summary().get("results", {})
        print(f"mtrl: {run.path} is finished (summary.json); nothing to resume", file=sys.stderr)
        print(dump_json({k: v for k, v in done.items() if not isinstance(v, list | dict)}), end="")
        return None
    return kind, cfg, run.path, True


def _cmd_train(args: argparse.Namespace) -> int:
    target = _what_to_train(args)
    if target is None:
        return 0
    kind, cfg, run_dir, resume = target
    from mtrl.training import check_device

    check_device(str(getattr(cfg, "device", "cpu")))  # before any work or run dir
    extra: dict[str, Any] = {}
    if args.init_from:
        from mtrl.training import load_init_state

        load_init_state(args.init_from)  # a missing or corrupt source fails before any work
        extra["init_from"] = args.init_from
    print(f"training {kind.name} -> {run_dir}", file=sys.stderr)
    try:
        results = kind.train(cfg, run_dir, resume=resume, progress=True, **extra)
    except Exception as exc:
        if not disk_full(exc):
            raise
        raise DiskFullError(
            f"no space left on the device of {run_dir} ({exc.__class__.__name__}); what was "
            f"checkpointed is intact: free space, then mtrl train --resume {run_dir}"
        ) from exc
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        name = getattr(exc, "name", "Ctrl-C")
        print(
            f"mtrl: interrupted ({name}); resume with: mtrl train --resume {run_dir}",
            file=sys.stderr,
        )
        return 128 + int(signum)
    summary = {k: v for k, v in results.items() if not isinstance(v, list | dict)}
    print(dump_json(summary), end="")
    print(f"\nrun directory: {run_dir}")
    return 0


def _cmd_adapt(args: argparse.Namespace) -> int:
    from mtrl.kinds.adaptation import adaptation_table, write_adaptation
    from mtrl.recipes import kinds_that, load_run

    if args.steps < 1 or args.tasks < 2:
        raise MtrlError("--steps must be >= 1 and --tasks >= 2 (a confidence interval needs two)")
    if args.pretrain_iterations is not None and args.pretrain_iterations < 0:
        raise MtrlError("--pretrain-iterations must be >= 0 (0 leaves the baseline out)")
    if args.task_batch is not None and args.task_batch < 1:
        raise MtrlError("--task-batch must be >= 1 (held-out tasks adapted together)")
    run, kind, cfg = load_run(args.run_dir)
    if kind.adapt is None:
        raise MtrlError(
            f"`mtrl adapt` needs a meta-learning run (kind {' or '.join(kinds_that(False))}); "
            f"{args.run_dir} is {kind.name!r}: use `mtrl eval {args.run_dir}`"
        )
    if args.task_batch is not None and "task_batch" not in signature(kind.adapt).parameters:
        raise MtrlError(
            f"--task-batch applies to MAML-RL runs (an environment per held-out task and "
            f"episode); a {kind.name!r} run adapts its tasks together: leave it out"
        )
    steps, tasks, pretrain = args.steps, args.tasks, args.pretrain_iterations
    extra = {} if args.task_batch is None else {"task_batch": args.task_batch}
    doc = kind.adapt(run, cfg, steps, tasks, pretrain, args.seed, **extra)
    json_path, png_path = write_adaptation(run, doc)
    if args.json:
        print(dump_json(doc), end="")
    else:
        print(adaptation_table(doc))
        print(f"\nwrote {json_path} and {png_path}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from mtrl.envs.vector import eval_env_config, make_multitask_env
    from mtrl.evaluation import evaluate, results_table, summarize
    from mtrl.loading import load_as
    from mtrl.recipes import load_run

    if args.episodes < 1:
        raise MtrlError("--episodes must be >= 1")
    run, kind, cfg = load_run(args.run_dir)
    if not kind.evaluates:
        hint = "mtrl adapt" if kind.adapt is not None else "mtrl plot"
        raise MtrlError(f"{args.run_dir} is a {kind.name!r} run; use `{hint} {args.run_dir}`")
    chosen = None if args.checkpoint is None else run.checkpoints / f"step_{args.checkpoint}.pt"
    if chosen is not None and not chosen.is_file():
        have = ", ".join(p.name[5:-3] for p in run.checkpoint_paths()) or "none"
        raise MtrlError(f"--checkpoint {args.checkpoint}: {chosen} does not exist (steps: {have})")
    state = run.load_checkpoint(chosen)
    mode = "sampled" if args.stochastic else "mean"
    print(f"evaluating {run.loaded_checkpoint} ({mode} actions)", file=sys.stderr)
    assert run.loaded_checkpoint is not None
    _, act = load_as(kind, cfg, state, run.loaded_checkpoint)
    torch.manual_seed(args.seed)  # sampled actions draw from torch's global generator
    with make_multitask_env(eval_env_config(cfg.env)) as env:
        rows = evaluate(env, lambda obs: act(obs, not args.stochastic), args.episodes, args.seed)
    doc = {
        "checkpoint": run.loaded_checkpoint.name,
        "actions": mode,
        "episodes_per_task": args.episodes,
        "per_task": rows,
        "aggregate": summarize(rows),
    }
    if kind.more_results is not None:
        doc |= kind.more_results(
            run, cfg, args.reference, lambda line: print(line, file=sys.stderr)
        )
    if args.json:
        print(dump_json(doc), end="")
    else:
        print(results_table(rows))
        if kind.results_text is not None:
            print("\n" + kind.results_text(doc, cfg))
    out = run.path / eval_file_name(args.checkpoint, args.stochastic)
    try:  # the numbers are printed first: a read-only run directory loses nothing
        out.write_text(dump_json(doc))
    except OSError as exc:
        warn(f"could not write {out} ({exc.strerror or exc})")
    else:
        if not args.json:
            print(f"\nwrote {out}")
    return 0


def eval_file_name(step: int | None, stochastic: bool) -> str:
    """``eval.json`` for the newest checkpoint's mean actions; another checkpoint or
    sampled actions get a name of their own, so no evaluation overwrites another kind."""
    parts = ["eval"] + ([f"step_{step}"] if step is not None else [])
    return "_".join(parts + (["sampled"] if stochastic else [])) + ".json"


def _cmd_record(args: argparse.Namespace) -> int:
    from mtrl.record import record

    paths = record(args.run_dir, args.episodes, args.out, args.seed, not args.stochastic, args.fps)
    for path in paths:
        print(f"wrote {path}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from mtrl.plotting import plot_run
    from mtrl.recipes import load_run

    run, kind, cfg = load_run(args.run_dir)
    cols = [c for c in args.y.split(",") if c] if args.y else []
    labels = _task_labels(cfg)
    paths = plot_run(run, kind.name, kind.curves, cols, labels)
    if kind.plots is not None:
        paths += kind.plots(run, cfg, labels)
    for path in paths:
        print(f"wrote {path}")
    return 0


def _task_labels(cfg: object) -> dict[int, str]:
    """Task id -> label of a run's multi-task env (for runs without a summary yet)."""
    from mtrl.envs.vector import MultiTaskEnvConfig, resolve_tasks

    env = getattr(cfg, "env", None)
    if not isinstance(env, MultiTaskEnvConfig):  # MAML-RL names a family; sine has none
        return {}

    return {i: t.label for i, t in enumerate(resolve_tasks(env))}


def add_commands(sub: Any) -> None:
    """Register this group's subcommands."""
    _add_train(sub)
    _add_adapt(sub)
    _add_eval(sub)

    p = sub.add_parser("plot", help="learning curves and per-task bars as PNG")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--y", help="comma-separated metrics.csv columns (default: per kind)")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser(
        "record",
        help="an MP4 per task of a trained policy (offscreen rendering)",
        description="Roll out a trained run's policy and write <RUN_DIR>/videos/<id>_<task>.mp4 "
        "per task. MuJoCo and Meta-World render through EGL when no display is set.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--episodes", type=int, default=1, help="episodes per task (default 1)")
    p.add_argument("--out", help="directory for the videos (default RUN_DIR/videos)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=int, default=None, help="default: the env's render_fps")
    p.add_argument("--stochastic", action="store_true", help="sample actions (default: mean)")
    p.set_defaults(func=_cmd_record)


def _add_train(sub: Any) -> None:
    """`mtrl train`'s parser."""
    p = sub.add_parser(
        "train",
        help="train from a TOML recipe into a run directory",
        description=RECIPES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recipe", nargs="?", metavar="RECIPE.toml")
    p.add_argument("--seed", type=int, help="shortcut for --set seed=N")
    p.add_argument("--device", help="shortcut for --set device='\"D\"' (cpu, cuda, cuda:1)")
    p.add_argument("--run-dir", help="default: runs/<recipe>_<timestamp>")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue from RUN_DIR's last checkpoint")
    p.add_argument(
        "--init-from",
        metavar="RUN_DIR|CKPT.pt",
        help="a new run starting from these trained weights (RUN_DIR: its newest intact "
        "checkpoint); optimiser, counters and data start afresh",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    p.set_defaults(func=_cmd_train)


def _add_adapt(sub: Any) -> None:
    """`mtrl adapt`'s parser."""
    p = sub.add_parser("adapt", help="few-shot adaptation curves on held-out tasks")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--steps", type=int, default=3, help="inner steps to evaluate (default 3)")
    p.add_argument(
        "--tasks", type=int, default=40, help="held-out tasks (meta-RL; sine uses eval.tasks)"
    )
    p.add_argument(
        "--pretrain-iterations",
        type=int,
        default=None,
        help="budget of the multi-task-pretrained baseline (sine: 2000, RL: the run's "
        "iterations; 0 leaves it out)",
    )
    p.add_argument(
        "--task-batch",
        type=int,
        default=None,
        help="MAML-RL: held-out tasks adapted together (default: all); fewer hold fewer "
        "environments in memory (Meta-World: ~20 MB each, one per task and episode)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_adapt)


def _add_eval(sub: Any) -> None:
    """`mtrl eval`'s parser."""
    p = sub.add_parser("eval", help="per-task evaluation of a trained agent")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--episodes", type=int, default=10, help="episodes per task (default 10)")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument(
        "--checkpoint",
        type=int,
        metavar="STEP",
        help="evaluate checkpoints/step_STEP.pt (default: the newest intact one)",
    )
    p.add_argument(
        "--stochastic",
        action="store_true",
        help="sample actions from the policy (default: its mean, as training evaluates)",
    )
    p.add_argument(
        "--reference",
        action="store_true",
        help="continual runs: train the missing single-task reference runs (cached) "
        "for forward transfer",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_eval)
