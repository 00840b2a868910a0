"""`mtrl bench meta`: sine meta-training throughput of mtrl against learn2learn.

One workload (Finn et al. sine: 1-40-40-1 ReLU MLP, 10 shots, 10 query points, one
inner step) is timed for each learner: mtrl's default path (stacked ``bmm`` for MLPs),
mtrl's generic ``vmap`` path, and learn2learn's ``MAML``/``MetaSGD`` (clone + adapt per
task) when importable. A timed iteration is the full meta-update (forward, backward,
Adam step) on pre-drawn task batches; repeats alternate between learners and the
median is reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from mtrl.meta.maml import MetaLearner, MetaLearnerConfig
from mtrl.meta.sine import SineBatch, SineTaskConfig, sample_sine_batch
from mtrl.nets import mlp

SHOTS = 10


def _learner(algorithm: str, batching: str, compile: bool = False) -> MetaLearner:
    torch.manual_seed(0)
    cfg = MetaLearnerConfig(algorithm=algorithm, batching=batching, compile=compile)  # type: ignore[arg-type]
    return MetaLearner(mlp(1, [40, 40], 1), nn.functional.mse_loss, cfg)


def _timer(
    learner: MetaLearner, loss_fn: Callable[[SineBatch], Tensor], batches: list[SineBatch]
) -> Callable[[], float]:
    opt = torch.optim.Adam(learner.parameters(), lr=1e-3)

    def run() -> float:
        t0 = time.perf_counter()
        for b in batches:
            loss = loss_fn(b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - t0

    return run


def _fast_loss(learner: MetaLearner) -> Callable[[SineBatch], Tensor]:
    def loss(b: SineBatch) -> Tensor:
        return learner.meta_loss(*b[:4])

    return loss


def _timers(
    algorithm: str, compile: bool, device: str, batches: list[SineBatch]
) -> tuple[dict[str, Callable[[], float]], str]:
    """A timer per path (mtrl's, and learn2learn's on the CPU where it is installed) and
    why learn2learn is missing, if it is."""
    timers: dict[str, Callable[[], float]] = {}
    paths = [("mtrl", "auto", False), ("mtrl (vmap path)", "vmap", False)]
    if compile:
        paths.append(("mtrl (compiled)", "vmap", True))
    for name, batching, comp in paths:
        ml = _learner(algorithm, batching, comp).to(device)
        timers[name] = _timer(ml, _fast_loss(ml), batches)
    if device != "cpu":
        return timers, "timed on the CPU only"
    try:
        from mtrl.meta.l2l_backend import l2l_meta_loss_fn

        ml = _learner(algorithm, "vmap")
        timers["learn2learn"] = _timer(ml, l2l_meta_loss_fn(ml, ml.config), batches)
    except ImportError as exc:
        return timers, str(exc).split(" (")[0]
    return timers, ""


def _ratios(tps: dict[str, float]) -> dict[str, float]:
    """Each mtrl path over learn2learn, and the compiled path over the vmap one."""
    ratios = {}
    if "learn2learn" in tps:
        for name in tps:
            if name != "learn2learn":
                ratios[f"{name} / learn2learn"] = tps[name] / tps["learn2learn"]
    if "mtrl (compiled)" in tps:
        ratios["mtrl (compiled) / mtrl (vmap path)"] = (
            tps["mtrl (compiled)"] / tps["mtrl (vmap path)"]
        )
    return ratios


def bench_meta(
    algorithm: str = "maml",
    meta_batch: int = 25,
    iterations: int = 50,
    repeats: int = 5,
    threads: int = 1,
    compile: bool = False,
    device: str = "cpu",
) -> dict[str, Any]:
    """Tasks/s of each learner and the ratios of mtrl's paths to learn2learn.

    ``compile`` adds mtrl's torch.compile'd path; ``device = "cuda"`` times mtrl's paths
    on the GPU (learn2learn is then left out: it is compared on the CPU).
    """
    if threads:
        torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    batches = [
        sample_sine_batch(meta_batch, SHOTS, SHOTS, gen, SineTaskConfig())
        for _ in range(iterations)
    ]
    if device != "cpu":
        batches = [SineBatch(*(t.to(device) for t in b)) for b in batches]
    timers, missing = _timers(algorithm, compile, device, batches)
    for run in timers.values():  # warm-up (and compilation)
        run()
    times: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(repeats):
        for name, run in timers.items():
            times[name].append(run())
    tps = {name: iterations * meta_batch / statistics.median(t) for name, t in times.items()}
    return {
        "algorithm": algorithm,
        "meta_batch": meta_batch,
        "shots": SHOTS,
        "iterations": iterations,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "device": device,
        "torch": torch.__version__,
        "tasks_per_s": tps,
        "ratios": _ratios(tps),
        "learn2learn_missing": missing,
    }
