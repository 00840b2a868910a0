"""The `mtrl` command: a thin dispatcher; each command group owns its options
(mtrl/cli/<group>.py)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from mtrl.cli import bench, compare, demos, envs, runs
from mtrl.cli.texts import RECIPES_HELP
from mtrl.errors import MtrlError
from mtrl.stopping import signals_as_interrupts


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
        with signals_as_interrupts():  # SIGTERM, SIGHUP: as Ctrl-C, in every command
            return int(args.func(args))
    except MtrlError as exc:
        print(f"mtrl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print("mtrl: interrupted", file=sys.stderr)
        return 128 + int(getattr(exc, "signum", signal.SIGINT))
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def run() -> None:
    """The `mtrl` executable: :func:`main`, then exit with its status. A stop signal
    that comes once the command is done (the interpreter shutting down) is ignored:
    what it would stop is finished."""
    status = main()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(status)
