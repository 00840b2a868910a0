"""The `mtrl` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtrl.errors import MtrlError
from mtrl.runs import dump_json, warn


def _cmd_envs_list(args: argparse.Namespace) -> int:
    from mtrl.envs import list_entries
    from mtrl.tables import format_table

    rows = list_entries()
    if args.json:
        print(dump_json(rows), end="")
    else:
        print(
            format_table(
                rows, ["name", "kind", "gym_id", "train_tasks", "test_tasks", "description"]
            )
        )
    return 0


def _cmd_envs_check(args: argparse.Namespace) -> int:
    from mtrl.envs import get_family
    from mtrl.envs.checks import DEFAULT_CHECK_NAMES, check_family
    from mtrl.tables import format_table

    names = args.names or list(DEFAULT_CHECK_NAMES)
    for name in names:  # unknown names fail before any (slow) check runs
        get_family(name)
    results = []
    for name in names:
        res = check_family(name, seed=args.seed)
        results.append(res)
        if args.verbose:
            print(f"{name}: {'ok' if res.ok else 'FAILED'}", file=sys.stderr)
    rows = [vars(r) | {"ok": "yes" if r.ok else "NO"} for r in results]
    print(format_table(rows, ["name", "task", "env_checker", "determinism", "task_sampling", "ok"]))
    failed = [r.name for r in results if not r.ok]
    if failed:
        print(f"\n{len(failed)} failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _cmd_envs_rollout(args: argparse.Namespace) -> int:
    from mtrl.config import apply_overrides, from_dict, read_toml
    from mtrl.envs.rollout_run import RolloutConfig, run_rollout
    from mtrl.tables import format_table

    data = read_toml(args.recipe) if args.recipe else {}
    sets = list(args.set)
    if args.name:
        sets.append(f"env.name={json.dumps(args.name)}")
    for key, value in (
        ("policy", args.policy),
        ("episodes_per_task", args.episodes),
        ("seed", args.seed),
    ):
        if value is not None:
            sets.append(f"{key}={json.dumps(value)}")
    cfg = from_dict(RolloutConfig, apply_overrides(data, sets))
    rows = run_rollout(
        cfg, Path(args.run_dir) if args.run_dir else None, progress=sys.stderr.isatty()
    )
    print(format_table(rows, ["task_id", "task", "episodes", "return", "length", "success"]))
    if args.run_dir:
        print(f"\nrun directory: {args.run_dir}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from mtrl.recipes import default_run_dir, load_recipe, load_run

    sets = list(args.set)
    if args.seed is not None:
        sets.append(f"seed={args.seed}")
    if args.device is not None:
        sets.append(f"device={json.dumps(args.device)}")
    if args.resume:
        if args.recipe or sets or args.init_from:
            raise MtrlError(
                "--resume RUN_DIR continues RUN_DIR with its stored recipe; drop RECIPE/--set/"
                "--seed/--device/--init-from (to change settings, start a new run from its "
                "weights: "
                f"mtrl train RECIPE --init-from {args.resume} --set KEY=VALUE)"
            )
        run, kind, cfg = load_run(args.resume)
        run_dir, resume = run.path, True
    else:
        if not args.recipe:
            raise MtrlError("give a RECIPE.toml to train, or --resume RUN_DIR")
        kind, cfg = load_recipe(args.recipe, sets)
        run_dir, resume = Path(args.run_dir or default_run_dir(args.recipe)), False
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
    except KeyboardInterrupt:
        print(f"interrupted; resume with: mtrl train --resume {run_dir}", file=sys.stderr)
        return 130
    summary = {k: v for k, v in results.items() if not isinstance(v, list | dict)}
    print(dump_json(summary), end="")
    print(f"\nrun directory: {run_dir}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from mtrl.compare import compare_table, run_compare

    if args.seeds < 1:
        raise MtrlError("--seeds must be >= 1")
    out = Path(args.out or f"runs/compare_{Path(args.recipe).stem}")
    doc = run_compare(
        args.recipe,
        args.vary,
        list(range(args.seeds)),
        out,
        args.set,
        log=lambda line: print(line, file=sys.stderr),
        jobs=args.jobs,
        metric=args.metric,
        reference=args.reference,
        executor=args.executor,
        address=args.address,
    )
    if args.json:
        print(dump_json(doc), end="")
    else:
        print(compare_table(doc))
        print(f"\nwrote {out / 'compare.json'}, {out / 'compare.md'} and {out / 'compare.png'}")
    return 0


def _cmd_adapt(args: argparse.Namespace) -> int:
    from mtrl.meta.adaptation import adaptation_table, write_adaptation
    from mtrl.recipes import load_run

    if args.steps < 1 or args.tasks < 2:
        raise MtrlError("--steps must be >= 1 and --tasks >= 2 (a confidence interval needs two)")
    if args.pretrain_iterations is not None and args.pretrain_iterations < 0:
        raise MtrlError("--pretrain-iterations must be >= 0 (0 leaves the baseline out)")
    run, kind, cfg = load_run(args.run_dir)
    if kind.name == "sine":
        from mtrl.meta.adaptation import adapt_regression

        budget = 2000 if args.pretrain_iterations is None else args.pretrain_iterations
        doc = adapt_regression(run, cfg, args.steps, budget, args.seed)
    elif kind.name == "maml-rl":
        from mtrl.meta.rl_adapt import adapt_meta_rl

        doc = adapt_meta_rl(run, cfg, args.steps, args.tasks, args.pretrain_iterations, args.seed)
    else:
        raise MtrlError(f"`mtrl adapt` needs a meta-learning run; {args.run_dir} is {kind.name!r}")
    json_path, png_path = write_adaptation(run, doc)
    if args.json:
        print(dump_json(doc), end="")
    else:
        print(adaptation_table(doc))
        print(f"\nwrote {json_path} and {png_path}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from mtrl.recipes import load_run

    if args.episodes < 1:
        raise MtrlError("--episodes must be >= 1")
    run, kind, cfg = load_run(args.run_dir)
    if kind.name not in ("mtsac", "mtppo", "sb3", "continual"):
        hint = "mtrl adapt" if kind.name in ("sine", "maml-rl") else "mtrl plot"
        raise MtrlError(f"{args.run_dir} is a {kind.name!r} run; use `{hint} {args.run_dir}`")
    from mtrl.agents.mtsac_train import eval_env_config
    from mtrl.envs.vector import make_multitask_env
    from mtrl.evaluation import evaluate, results_table, summarize

    state = run.load_checkpoint()
    print(f"evaluating {run.loaded_checkpoint}", file=sys.stderr)
    env = make_multitask_env(eval_env_config(cfg.env))
    try:
        if kind.name in ("mtsac", "continual"):
            from mtrl.agents.mtsac_train import load_agent
            from mtrl.agents.mtsac_train import policy_fn as sac_policy

            agent = load_agent(cfg, env, state)
            policy = sac_policy(agent, env, cfg.device, True)
        elif kind.name == "mtppo":
            from mtrl.agents.ppo import make_actor_critic
            from mtrl.agents.ppo import policy_fn as ppo_policy

            ac = make_actor_critic(cfg, env)
            ac.load_state_dict(state["actor_critic"])
            policy = ppo_policy(ac, env, cfg.device)
        else:
            from mtrl.agents.sb3_train import load_model
            from mtrl.agents.sb3_train import policy_fn as sb3_policy

            policy = sb3_policy(load_model(state, cfg, None))
        rows = evaluate(env, policy, args.episodes, args.seed)
    finally:
        env.close()
    doc = {"episodes_per_task": args.episodes, "per_task": rows, "aggregate": summarize(rows)}
    if kind.name == "continual":
        from mtrl.curriculum.reference import reference_aucs
        from mtrl.curriculum.report import continual_results

        refs = reference_aucs(
            cfg, train=args.reference, log=lambda line: print(line, file=sys.stderr)
        )
        doc["continual"] = continual_results(run, cfg.steps_per_task, refs)
    if args.json:
        print(dump_json(doc), end="")
    else:
        print(results_table(rows))
        if kind.name == "continual":
            from mtrl.curriculum.report import continual_report

            print("\n" + continual_report(doc["continual"], cfg.continual.method))
    try:  # the numbers are printed first: a read-only run directory loses nothing
        (run.path / "eval.json").write_text(dump_json(doc))
    except OSError as exc:
        warn(f"could not write {run.path / 'eval.json'} ({exc.strerror or exc})")
    else:
        if not args.json:
            print(f"\nwrote {run.path / 'eval.json'}")
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    from mtrl.record import record

    paths = record(args.run_dir, args.episodes, args.out, args.seed, not args.stochastic, args.fps)
    for path in paths:
        print(f"wrote {path}")
    return 0


def _cmd_demos_collect(args: argparse.Namespace) -> int:
    from mtrl.demos.collect import collect
    from mtrl.demos.dataset import open_dataset, per_task_summary
    from mtrl.tables import format_table

    try:
        ident = collect(
            args.name,
            args.policy,
            args.episodes,
            args.out,
            seed=args.seed,
            reward_version=args.reward_version,
            max_episode_steps=args.max_episode_steps,
            progress=True,
        )
    except KeyboardInterrupt:
        print("mtrl: interrupted; the finished episodes are in the dataset", file=sys.stderr)
        return 130
    rows = per_task_summary(open_dataset(ident, args.out))
    print(format_table(rows, ["task_id", "task", "episodes", "return", "success"]))
    print(f"\nwrote {ident} under {args.out} (MINARI_DATASETS_PATH={args.out})")
    return 0


def _cmd_demos_list(args: argparse.Namespace) -> int:
    from mtrl.demos.dataset import list_datasets
    from mtrl.tables import format_table

    rows = list_datasets(args.root)
    if not rows:
        print(f"no datasets under {args.root}; make one with `mtrl demos collect`")
        return 0
    print(format_table(rows, ["dataset", "episodes", "steps", "env", "tasks", "policy"]))
    return 0


def _cmd_demos_info(args: argparse.Namespace) -> int:
    from mtrl.demos.dataset import open_dataset, per_task_summary
    from mtrl.tables import format_table

    dataset = open_dataset(args.dataset, args.root)
    meta = dataset.storage.metadata
    print(
        f"{args.dataset}: {dataset.total_episodes} episodes, {dataset.total_steps} steps; "
        f"env {meta.get('mtrl_env', '?')}, policy {meta.get('mtrl_policy', '?')}, "
        f"Meta-World reward {meta.get('mtrl_reward_version', '?')}"
    )
    rows = per_task_summary(dataset)
    print(format_table(rows, ["task_id", "task", "episodes", "return", "success"]))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from mtrl.plotting import plot_run
    from mtrl.recipes import load_run

    run, kind, cfg = load_run(args.run_dir)
    cols = [c for c in args.y.split(",") if c] if args.y else []
    labels = _task_labels(cfg)
    for path in plot_run(run, kind.name, cols, labels):
        print(f"wrote {path}")
    if kind.name == "continual":
        from mtrl.curriculum.report import plot_success_heatmap, success_matrix

        steps, success = success_matrix(run, len(labels))
        if len(steps):
            names = [labels[i] for i in range(len(labels))]
            path = plot_success_heatmap(
                steps, success, names, cfg.steps_per_task, run.plots / "success_matrix.png"
            )
            print(f"wrote {path}")
    return 0


def _task_labels(cfg: object) -> dict[int, str]:
    """Task id -> label of a run's multi-task env (for runs without a summary yet)."""
    env = getattr(cfg, "env", None)
    if env is None or not hasattr(env, "split"):
        return {}
    from mtrl.envs.vector import resolve_tasks

    return {i: t.label for i, t in enumerate(resolve_tasks(env))}


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.name == "meta":
        return _bench_meta(args)
    if args.name == "sac":
        return _bench_sac(args)
    if args.name != "env":
        raise MtrlError(f"unknown benchmark {args.name!r}; available: env, meta, sac")
    from mtrl.bench.env_bench import bench_env

    steps = 1000 if args.steps is None else args.steps
    if steps < 1 or args.repeats < 1:
        raise MtrlError("--steps and --repeats must be >= 1")

    res = bench_env(steps=steps, repeats=args.repeats, vectorization=args.vectorization)
    doc = vars(res) | {"ratio": res.ratio, "overhead": res.overhead}
    if args.json:
        print(dump_json(doc), end="")
    else:
        print(
            f"MT10 vector env, {res.vectorization}, {res.num_envs} sub-envs, "
            f"{res.steps} steps x {res.repeats}"
        )
        print(f"  mtrl        {res.mtrl_steps_per_s:10.0f} env-steps/s")
        print(f"  Meta-World  {res.metaworld_steps_per_s:10.0f} env-steps/s")
        print(f"  ratio mtrl/Meta-World = {res.ratio:.3f}  (overhead {100 * res.overhead:+.1f}%)")
    return 0


def _bench_sac(args: argparse.Namespace) -> int:
    from mtrl.bench.sac_bench import bench_sac

    updates = 20 if args.steps is None else args.steps
    if updates < 1 or args.repeats < 1 or args.batch < 10 or args.batch % 10:
        raise MtrlError("--steps and --repeats must be >= 1; --batch a multiple of 10 (tasks)")
    res = bench_sac(
        updates=updates,
        repeats=args.repeats,
        batch=args.batch,
        threads=args.threads,
        compile=args.compile,
        device=args.device,
    )
    if args.json:
        print(dump_json(res), end="")
        return 0
    print(
        f"{res['device']}: SAC updates on MT10 data, batch {res['batch']}, hidden {res['hidden']}, "
        f"{res['threads']} thread(s), torch {res['torch']}"
    )
    for name, ups in res["updates_per_s"].items():
        print(f"  {name:<24} {ups:8.2f} updates/s")
    print(f"  ratio mtrl/SB3 = {res['ratio']:.2f}x")
    if res["ratio_compiled"] is not None:
        print(f"  ratio mtrl (compiled)/SB3 = {res['ratio_compiled']:.2f}x")
    return 0


def _bench_meta(args: argparse.Namespace) -> int:
    from mtrl.bench.meta_bench import bench_meta

    iterations = 50 if args.steps is None else args.steps
    if iterations < 1 or args.repeats < 1 or args.meta_batch < 1:
        raise MtrlError("--steps, --repeats and --meta-batch must be >= 1")
    res = bench_meta(
        algorithm=args.algorithm,
        meta_batch=args.meta_batch,
        iterations=iterations,
        repeats=args.repeats,
        threads=args.threads,
        compile=args.compile,
        device=args.device,
    )
    if args.json:
        print(dump_json(res), end="")
        return 0
    print(
        f"{res['device']}: sine meta-training, {res['algorithm']}, meta-batch {res['meta_batch']}, "
        f"{res['shots']} shots, MLP 1-40-40-1, {res['threads']} thread(s), torch {res['torch']}"
    )
    for name, tps in res["tasks_per_s"].items():
        print(f"  {name:<22} {tps:10.0f} tasks/s")
    for name, ratio in res["ratios"].items():
        print(f"  ratio {name} = {ratio:.1f}x")
    if "learn2learn" not in res["tasks_per_s"]:
        print(f"  learn2learn: not importable here ({res['learn2learn_missing']})")
    return 0


RECIPES_HELP = """\
A recipe is a TOML file; its `kind` picks what trains:
  mtsac      multi-task SAC (architectures, balancing, curricula)
  mtppo      multi-task PPO
  sb3        a stable-baselines3 algorithm on the multi-task env
  continual  a task sequence with a continual-learning method (Continual World)
  maml-rl    MAML / FOMAML / ANIL / Meta-SGD on an RL task family
  sine       few-shot sine regression meta-learning
Examples for every kind are in experiments/ (e.g. experiments/mtsac_nav2d.toml).

--set KEY=VALUE overrides a recipe key with a TOML value; dotted keys reach into
tables: --set total_steps=20000 --set sac.actor.hidden=[64,64] --set env.name='"MT10"'
"""
SET_HELP = "override a recipe key with a TOML value, e.g. sac.actor.hidden=[64,64] (repeatable)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtrl",
        description="mtrl: multi-task RL, meta-learning and lifelong learning.\n\n" + RECIPES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    envs = sub.add_parser("envs", help="task families and suites").add_subparsers(
        dest="envs_command", required=True
    )
    p = envs.add_parser("list", help="families and suites with task counts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_envs_list)

    p = envs.add_parser("check", help="gymnasium env checker + same-seed determinism")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=_cmd_envs_check)

    p = envs.add_parser("rollout", help="roll a random or expert policy through a suite")
    p.add_argument("name", nargs="?", help="family or suite (overrides env.name of the recipe)")
    p.add_argument("--recipe", help="TOML recipe (RolloutConfig)")
    p.add_argument("--policy", choices=["random", "expert"])
    p.add_argument("--episodes", type=int, help="episodes per task")
    p.add_argument("--seed", type=int)
    p.add_argument("--run-dir", help="write config.toml, metrics.csv, summary.json here")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    p.set_defaults(func=_cmd_envs_rollout)

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

    demos = sub.add_parser(
        "demos", help="demonstration datasets (Minari): collect, list, info"
    ).add_subparsers(dest="demos_command", required=True)
    p = demos.add_parser("collect", help="per-task episodes of an expert or a trained run")
    p.add_argument("name", metavar="NAME", help="family or suite, e.g. MT10")
    p.add_argument(
        "--policy",
        required=True,
        metavar="expert|RUN_DIR",
        help="Meta-World's scripted experts, or a trained mtrl run directory",
    )
    p.add_argument("--episodes", type=int, default=10, help="episodes per task (default 10)")
    p.add_argument("--out", default="datasets", help="Minari datasets root (default datasets/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reward-version", choices=["v1", "v2"], default="v2")
    p.add_argument("--max-episode-steps", type=int, default=None)
    p.set_defaults(func=_cmd_demos_collect)
    p = demos.add_parser("list", help="datasets under a root, with episodes and policy")
    p.add_argument("--root", default="datasets")
    p.set_defaults(func=_cmd_demos_list)
    p = demos.add_parser("info", help="episodes, return and success per task of a dataset")
    p.add_argument("dataset", metavar="DATASET_ID")
    p.add_argument("--root", default="datasets")
    p.set_defaults(func=_cmd_demos_info)

    p = sub.add_parser("compare", help="train recipe variants over seeds and compare them")
    p.add_argument("recipe", metavar="RECIPE.toml")
    p.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a grid axis; K1+K2=... ties keys (repeat for a cartesian product)",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per variant (default 3)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time, in worker processes")
    p.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="ray: each run a Ray task (CPUs from the recipe's threads, a GPU on cuda)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="ray: the cluster (auto, ray://HOST:10001); default: a local one on this machine",
    )
    p.add_argument("--out", help="default: runs/compare_<recipe>")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    p.add_argument(
        "--metric",
        choices=["auto", "success", "return"],
        default="auto",
        help="what the final evaluation is compared by (auto: success where reported)",
    )
    p.add_argument(
        "--reference",
        action="store_true",
        help="continual runs: train the missing single-task reference runs (cached, per "
        "seed) so forward transfer is reported",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_compare)

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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_adapt)

    p = sub.add_parser("eval", help="per-task evaluation of a trained agent")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--episodes", type=int, default=10, help="episodes per task (default 10)")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument(
        "--reference",
        action="store_true",
        help="continual runs: train the missing single-task reference runs (cached) "
        "for forward transfer",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_eval)

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

    p = sub.add_parser("bench", help="throughput benchmarks against peers")
    p.add_argument(
        "name",
        choices=["env", "meta", "sac"],
        help="env: MT10 vector env vs Meta-World's; meta: sine meta-training vs learn2learn; "
        "sac: MT-SAC updates vs SB3's SAC",
    )
    p.add_argument(
        "--steps", type=int, default=None, help="env: steps per repeat; meta: iterations"
    )
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--meta-batch", type=int, default=25, help="meta: tasks per meta-batch")
    p.add_argument("--algorithm", choices=["maml", "fomaml", "metasgd"], default="maml")
    p.add_argument("--threads", type=int, default=1, help="meta/sac: torch threads (0: default)")
    p.add_argument("--batch", type=int, default=1280, help="sac: batch size (default 1280)")
    p.add_argument("--compile", action="store_true", help="meta/sac: add the compiled path")
    p.add_argument("--device", default="cpu", help="meta/sac: cpu or cuda")
    p.add_argument("--vectorization", choices=["sync", "async"], default="sync")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MtrlError as exc:
        print(f"mtrl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mtrl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
