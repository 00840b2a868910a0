"""`mtrl bench env|meta|sac`."""

from __future__ import annotations

import argparse
from typing import Any

from mtrl.errors import MtrlError
from mtrl.runs import dump_json


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.name == "meta":
        return _bench_meta(args)
    if args.name == "sac":
        return _bench_sac(args)
    if args.name == "meta-rl":
        return _bench_meta_rl(args)
    if args.name != "env":
        raise MtrlError(f"unknown benchmark {args.name!r}; available: env, meta, meta-rl, sac")
    from mtrl.bench.env_bench import bench_env

    steps = 1000 if args.steps is None else args.steps
    if steps < 1 or args.repeats < 1:
        raise MtrlError("--steps and --repeats must be >= 1")

    res = bench_env(
        steps=steps,
        repeats=args.repeats,
        vectorization=args.vectorization,
        suite=args.suite,
        workers=args.workers,
    )
    doc = vars(res) | {
        "ratio": res.ratio,
        "overhead": res.overhead,
        "ratio_to_sync": res.ratio_to_sync,
    }
    if args.json:
        print(dump_json(doc), end="")
        return 0
    workers = f", {res.workers} worker processes" if res.workers else ""
    print(
        f"{res.suite} vector env, {res.vectorization}{workers}, {res.num_envs} sub-envs, "
        f"{res.steps} steps x {res.repeats}"
    )
    labels = {
        "mtrl": "mtrl",
        "metaworld": "Meta-World",
        "mtrl_sync": "mtrl sync",
        "mtrl_contiguous": "mtrl async, contiguous slices",
    }
    for name, rate in res.steps_per_s.items():
        print(f"  {labels[name]:<29} {rate:10.0f} env-steps/s")
    if res.groups is not None:
        print(f"  sub-envs per worker (balanced by step cost): {res.groups}")
    print(f"  ratio mtrl/Meta-World = {res.ratio:.3f}  (overhead {100 * res.overhead:+.1f}%)")
    if res.ratio_to_sync is not None:
        print(f"  ratio mtrl async/mtrl sync = {res.ratio_to_sync:.3f}")
    contiguous = res.steps_per_s.get("mtrl_contiguous")
    if contiguous:
        print(f"  ratio balanced/contiguous slices = {res.mtrl_steps_per_s / contiguous:.3f}")
    return 0


def _bench_meta_rl(args: argparse.Namespace) -> int:
    from mtrl.bench.meta_rl_bench import bench_meta_rl
    from mtrl.envs.workers import default_workers

    steps = 500 if args.steps is None else args.steps
    meta_batch = 10 if args.meta_batch is None else args.meta_batch
    if steps < 1 or args.repeats < 1 or meta_batch < 1:
        raise MtrlError("--steps, --repeats and --meta-batch must be >= 1")
    workers = 0
    if args.vectorization == "async":
        workers = args.workers or default_workers()
    res = bench_meta_rl(args.env, meta_batch, steps, args.repeats, workers=workers)
    if args.json:
        print(dump_json(vars(res) | {"ratio": res.ratio}), end="")
        return 0
    print(f"{res.env} meta-RL sampling, {res.meta_batch} tasks x 1 episode of {res.steps} steps, "
          f"median of {res.repeats}")  # fmt: skip
    how = (f" ({res.workers} worker processes)", " (async)") if res.workers > 1 else ("", "")
    print(f"  mtrl sampler{how[0]:<24} {res.steps_per_s['mtrl']:10.0f} env-steps/s")
    print(f"  Meta-World vector env{how[1]:<15} {res.steps_per_s['metaworld']:10.0f} env-steps/s")
    print(f"  ratio mtrl/Meta-World = {res.ratio:.3f}")
    alone = res.steps_per_s.get("mtrl_one_process")
    if alone:
        print(f"  mtrl sampler (one process){'':10} {alone:10.0f} env-steps/s")
        print(f"  ratio worker processes/one process = {res.steps_per_s['mtrl'] / alone:.3f}")
    return 0


def _widths(text: str) -> list[int]:
    try:
        widths = [int(w) for w in text.split(",")]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give widths like 1024,1024,1024")
    return widths


def _bench_sac(args: argparse.Namespace) -> int:
    from mtrl.bench.sac_bench import bench_sac

    updates = 20 if args.steps is None else args.steps
    if updates < 1 or args.repeats < 1 or args.batch < 10 or args.batch % 10:
        raise MtrlError("--steps and --repeats must be >= 1; --batch a multiple of 10 (tasks)")
    if any(n < 2 for n in args.critics):
        raise MtrlError("--critics N needs N >= 2 (2: SAC's twin critics)")
    res = bench_sac(
        updates=updates,
        repeats=args.repeats,
        batch=args.batch,
        threads=args.threads,
        compile=args.compile,
        device=args.device,
        critics=args.critics,
        options=args.options,
        hidden=args.hidden,
    )
    if args.json:
        print(dump_json(res), end="")
        return 0
    print(
        f"{res['device']}: SAC updates on MT10 data, batch {res['batch']}, hidden {res['hidden']}, "
        f"{res['threads']} thread(s), torch {res['torch']}"
    )
    for name, ups in res["updates_per_s"].items():
        ratio = res["ratios"].get(name)
        vs = "" if ratio is None else f"  {ratio:.2f}x SB3"
        size = res["parameters"].get(name)
        params = "" if size is None else f"  ({size / 1e6:.2f}M parameters)"
        print(f"  {name:<32} {ups:8.2f} updates/s{vs}{params}")
    return 0


def _bench_meta(args: argparse.Namespace) -> int:
    from mtrl.bench.meta_bench import bench_meta

    iterations = 50 if args.steps is None else args.steps
    meta_batch = 25 if args.meta_batch is None else args.meta_batch
    if iterations < 1 or args.repeats < 1 or meta_batch < 1:
        raise MtrlError("--steps, --repeats and --meta-batch must be >= 1")
    res = bench_meta(
        algorithm=args.algorithm,
        meta_batch=meta_batch,
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


def add_commands(sub: Any) -> None:
    """Register this group's subcommands."""
    p = sub.add_parser("bench", help="throughput benchmarks against peers")
    p.add_argument(
        "name",
        choices=["env", "meta", "meta-rl", "sac"],
        help="env: Meta-World vector env vs Meta-World's; meta: sine meta-training vs learn2learn; "
        "meta-rl: meta-RL sampling vs Meta-World's ML vector env; sac: MT-SAC updates vs SB3's SAC",
    )
    p.add_argument(
        "--steps", type=int, default=None, help="env: steps per repeat; meta: iterations"
    )
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--meta-batch", type=int, default=None, help="meta/meta-rl: tasks per meta-batch (25/10)"
    )
    p.add_argument("--env", default="ML1:reach-v3", help="meta-rl: ML1:<env> or ML10")
    p.add_argument("--algorithm", choices=["maml", "fomaml", "metasgd"], default="maml")
    p.add_argument("--threads", type=int, default=1, help="meta/sac: torch threads (0: default)")
    p.add_argument("--batch", type=int, default=1280, help="sac: batch size (default 1280)")
    p.add_argument("--compile", action="store_true", help="meta/sac: add the compiled path")
    p.add_argument(
        "--critics",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="sac: add MT-SAC with an ensemble of N critics (repeatable; e.g. 10 as RLPD)",
    )
    p.add_argument(
        "--critic-option",
        choices=["residual", "hl_gauss"],
        action="append",
        default=[],
        dest="options",
        help="sac: add MT-SAC with residual (BRO) or HL-Gauss critics (repeatable)",
    )
    p.add_argument(
        "--hidden",
        type=_widths,
        help="sac: hidden layer widths of actor and critics (default 400,400,400)",
    )
    p.add_argument("--device", default="cpu", help="meta/sac: cpu or cuda")
    p.add_argument(
        "--vectorization",
        choices=["sync", "async"],
        default="sync",
        help="env: async times mtrl's worker processes, Meta-World's async and mtrl's sync; "
        "meta-rl: async times mtrl's sampler in worker processes against Meta-World's async",
    )
    p.add_argument("--suite", choices=["MT10", "MT50"], default="MT10", help="env: which suite")
    p.add_argument(
        "--workers", type=int, help="env, meta-rl: mtrl's worker processes (default: cores)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_bench)
