"""`mtrl envs list|check|rollout`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mtrl.cli.texts import SET_HELP
from mtrl.runs import dump_json


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


def add_commands(sub: Any) -> None:
    """Register this group's subcommands."""
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
