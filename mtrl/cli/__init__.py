"""The `mtrl` command: a thin dispatcher; each command group owns its options
(mtrl/cli/<group>.py)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from mtrl.cli import bench, compare, demos, envs, runs
from mtrl.cli.texts import RECIPES_HELP
from mtrl.errors import MtrlError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtrl",
        description="mtrl: multi-task RL, meta-learning and lifelong learning.\n\n" + RECIPES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (envs, runs, compare, demos, bench):
        group.add_commands(sub)
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
