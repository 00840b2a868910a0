"""`mtrl demos collect|list|info`: demonstration datasets."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _cmd_demos_collect(args: argparse.Namespace) -> int:
    from mtrl.collect import collect
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
            tasks=args.tasks.split(",") if args.tasks else None,
            ident=args.id,
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


def add_commands(sub: Any) -> None:
    """Register this group's subcommands."""
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
    p.add_argument(
        "--tasks",
        default=None,
        metavar="A,B,...",
        help="experts only: these tasks of the suite, by label (e.g. reach-v3,push-v3)",
    )
    p.add_argument(
        "--id", default=None, metavar="NS/NAME-vN", help="dataset id (default from NAME)"
    )
    p.set_defaults(func=_cmd_demos_collect)
    p = demos.add_parser("list", help="datasets under a root, with episodes and policy")
    p.add_argument("--root", default="datasets")
    p.set_defaults(func=_cmd_demos_list)
    p = demos.add_parser("info", help="episodes, return and success per task of a dataset")
    p.add_argument("dataset", metavar="DATASET_ID")
    p.add_argument("--root", default="datasets")
    p.set_defaults(func=_cmd_demos_info)
