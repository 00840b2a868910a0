"""`mtrl compare`: variants x seeds."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from mtrl.cli.texts import SET_HELP
from mtrl.errors import MtrlError
from mtrl.runs import dump_json


def _cmd_compare(args: argparse.Namespace) -> int:
    from mtrl.compare import compare_table, run_compare

    if args.seeds < 1 or args.first_seed < 0:
        raise MtrlError("--seeds must be >= 1 and --first-seed >= 0")
    out = Path(args.out or f"runs/compare_{Path(args.recipe).stem}")
    try:  # (SIGTERM and SIGHUP come as Ctrl-C: mtrl.cli.main)
        doc = run_compare(
            args.recipe,
            args.vary,
            list(range(args.first_seed, args.first_seed + args.seeds)),
            out,
            args.set,
            log=lambda line: print(line, file=sys.stderr),
            jobs=args.jobs,
            metric=args.metric,
            reference=args.reference,
            executor=args.executor,
            address=args.address,
        )
    except KeyboardInterrupt as exc:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # more presses: we are leaving
        signum = int(getattr(exc, "signum", signal.SIGINT))
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(
            f"mtrl: interrupted ({name}); continue the comparison with (finished runs "
            f"are reused, interrupted ones resumed):\n  {_again(args, out)}",
            file=sys.stderr,
        )
        return 128 + signum
    if args.json:
        print(dump_json(doc), end="")
    else:
        print(compare_table(doc))
        print(f"\nwrote {out / 'compare.json'}, {out / 'compare.md'} and {out / 'compare.png'}")
    return 0


def _again(args: argparse.Namespace, out: Path) -> str:
    """The command that continues this comparison."""
    argv = ["mtrl", "compare", args.recipe, "--out", str(out), "--seeds", str(args.seeds)]
    argv += ["--first-seed", str(args.first_seed)] if args.first_seed else []
    for vary in args.vary:
        argv += ["--vary", vary]
    for setting in args.set:
        argv += ["--set", setting]
    if args.jobs != 1:
        argv += ["--jobs", str(args.jobs)]
    if args.executor != "local":
        argv += ["--executor", args.executor]
    if args.address:
        argv += ["--address", args.address]
    if args.metric != "auto":
        argv += ["--metric", args.metric]
    argv += ["--reference"] if args.reference else []
    argv += ["--json"] if args.json else []
    return shlex.join(argv)


def add_commands(sub: Any) -> None:
    """Register this group's subcommands."""
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
    p.add_argument(
        "--first-seed",
        type=int,
        default=0,
        metavar="K",
        help="seeds K..K+N-1 instead (re-running a claim on seeds it was not tuned on)",
    )
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
