"""Few-shot sine regression: the recipe, meta-training with checkpoints, and evaluation."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from mtrl.config import bounded, check_fields
from mtrl.errors import ConfigError, TrainingDivergedError
from mtrl.loading import ActFn
from mtrl.loops.context import TrainingContext
from mtrl.meta.maml import MetaLearner, MetaLearnerConfig
from mtrl.meta.sine import SineBatch, SineTaskConfig, sample_sine_batch
from mtrl.nets import mlp
from mtrl.runs import RunDir
from mtrl.seeding import global_rng_state, set_global_rng_state
from mtrl.stats import mean_ci95
from mtrl.training import (
    divergence_advice,
    init_weights,
)

Backend = Literal["mtrl", "learn2learn"]


# what the commands ask of this kind (mtrl.recipes.RecipeKind)
CURVES = ("iteration", ["meta_loss"])  # `mtrl plot`
EVALUATES = False  # `mtrl adapt` instead
ADAPT = "mtrl.kinds.adaptation:adapt_regression"


@dataclass(frozen=True)
class RegressionEvalConfig:
    """Held-out evaluation: the same ``tasks`` for every run with the same ``seed``."""

    tasks: int = bounded(600, ge=2)
    query: int = bounded(100, ge=1)
    max_steps: int = bounded(3, ge=1, le=100)
    seed: int = bounded(1_000_003, ge=0)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class RegressionRecipe:
    """`mtrl train` recipe for few-shot sine regression (Finn et al. 2017 defaults)."""

    kind: Literal["sine"] = "sine"
    seed: int = bounded(0, ge=0)
    backend: Backend = "mtrl"
    device: str = "cpu"
    threads: int = bounded(0, ge=0)  # torch intra-op threads; 0 keeps torch's default
    shots: int = bounded(10, ge=1)
    query_shots: int = bounded(0, ge=0)  # query points per training task; 0: same as shots
    meta_batch: int = bounded(25, ge=1)
    iterations: int = bounded(30_000, ge=1)
    meta_lr: float = bounded(1e-3, gt=0.0)
    hidden: list[int] = field(default_factory=lambda: [40, 40])
    log_every: int = bounded(500, ge=1)
    checkpoint_every: int = bounded(5_000, ge=1)
    keep_checkpoints: int = bounded(3, ge=0)  # newest checkpoints kept; 0 keeps all
    meta: MetaLearnerConfig = field(default_factory=MetaLearnerConfig)
    task: SineTaskConfig = field(default_factory=SineTaskConfig)
    eval: RegressionEvalConfig = field(default_factory=RegressionEvalConfig)

    def __post_init__(self) -> None:
        check_fields(self)
        if any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden = {self.hidden!r}: every layer needs >= 1 unit")
        if self.backend == "learn2learn" and (self.meta.algorithm == "anil" or self.meta.layer_lrs):
            raise ConfigError(
                "backend = 'learn2learn' runs maml, fomaml and metasgd with one inner_lr; "
                "use backend = 'mtrl' for anil or layer_lrs"
            )


def build_learner(recipe: RegressionRecipe) -> MetaLearner:
    """The 1-hidden...-1 ReLU regressor wrapped in the recipe's meta-learner."""
    model = mlp(1, recipe.hidden, 1, "relu")
    return MetaLearner(model, nn.functional.mse_loss, recipe.meta).to(recipe.device)


def eval_tasks(recipe: RegressionRecipe, shots: int | None = None) -> SineBatch:
    """The held-out evaluation tasks (fixed by ``eval.seed``, disjoint from training)."""
    gen = torch.Generator().manual_seed(recipe.eval.seed)
    k = recipe.shots if shots is None else shots
    return sample_sine_batch(recipe.eval.tasks, k, recipe.eval.query, gen, recipe.task)


def adaptation_curve(
    learner: MetaLearner, batch: SineBatch, max_steps: int, device: str = "cpu"
) -> list[dict[str, float]]:
    """Query MSE (mean, 95% CI) over the batch's tasks after 0..max_steps inner steps."""
    xs, ys, xq, yq = (t.to(device) for t in batch[:4])
    losses = learner.adaptation_losses(xs, ys, xq, yq, max_steps).cpu().numpy()
    rows = []
    for step in range(max_steps + 1):
        mean, ci = mean_ci95(losses[step])
        rows.append({"steps": step, "mse": mean, "ci95": ci})
    return rows


MetaLossFn = Callable[[SineBatch], Tensor]


def _meta_loss_fn(learner: MetaLearner, recipe: RegressionRecipe) -> MetaLossFn:
    dev = recipe.device
    if recipe.backend == "learn2learn":
        from mtrl.meta.l2l_backend import l2l_meta_loss_fn

        return l2l_meta_loss_fn(learner, recipe.meta)

    def loss(batch: SineBatch) -> Tensor:
        return learner.meta_loss(*(t.to(dev) for t in batch[:4]))

    return loss


def train_regression(
    recipe: RegressionRecipe,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = False,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """Meta-train on sine tasks, checkpointing; evaluate on held-out tasks at the end.

    ``resume`` continues from the newest checkpoint of ``run_dir`` (the recipe there
    must be the one given). Ctrl-C saves a checkpoint before stopping.
    """
    ctx = TrainingContext(recipe, run_dir, resume)  # seeds the initialisation below
    learner = build_learner(recipe)
    if not resume:
        init_weights(learner, init_from, "learner")
    run = _MetaTraining(recipe, learner, ctx)
    ctx.start(
        run.state,
        total=recipe.iterations,
        step=run.it,
        progress=progress,
        desc="meta-train",
        unit="it",
    )
    if ctx.state is not None and ctx.state.get("global_rng") is not None:
        set_global_rng_state(ctx.state["global_rng"])
    with ctx.guarded(lambda: run.it):
        run.train()
    ctx.save(run.it)
    curve = adaptation_curve(
        learner, eval_tasks(recipe), recipe.eval.max_steps, device=recipe.device
    )
    results: dict[str, Any] = {
        "eval_tasks": recipe.eval.tasks,
        "shots": recipe.shots,
        "adaptation": curve,
        "mse_after_1_step": curve[1]["mse"],
        "mse_after_1_step_ci95": curve[1]["ci95"],
    }
    ctx.finish(results, kind=recipe.kind, algorithm=recipe.meta.algorithm, backend=recipe.backend)
    return results


class _MetaTraining:
    """The meta-training loop's state (learner, optimiser, task sampler, iteration and
    the losses since the last logged row), restored from a checkpoint where there is one."""

    def __init__(self, recipe: RegressionRecipe, learner: MetaLearner, ctx: TrainingContext):
        self.recipe, self.learner, self.ctx = recipe, learner, ctx
        self.opt = torch.optim.Adam(learner.parameters(), lr=recipe.meta_lr)
        self.gen = torch.Generator().manual_seed(recipe.seed)
        self.it = 0
        self.window: list[float] = []
        state = ctx.state
        if state is not None:
            learner.load_state_dict(state["learner"])
            self.opt.load_state_dict(state["optimizer"])
            self.gen.set_state(state["generator"])
            self.it = int(state["iteration"])
            self.window = list(state.get("window", []))

    def state(self, it: int) -> dict[str, Any]:
        """A checkpoint's contents at iteration ``it``."""
        return {
            "learner": self.learner.state_dict(),
            "optimizer": self.opt.state_dict(),
            "generator": self.gen.get_state(),
            "iteration": it,
            "window": list(self.window),  # losses since the last logged row
            "global_rng": global_rng_state(),
        }

    def train(self) -> None:
        """Outer steps until the recipe's iterations, logging and checkpointing."""
        recipe, ctx = self.recipe, self.ctx
        query = recipe.query_shots or recipe.shots
        meta_loss = _meta_loss_fn(self.learner, recipe)
        t0 = time.perf_counter()
        while self.it < recipe.iterations:
            ctx.check()  # Ctrl-C stops between iterations
            batch = sample_sine_batch(recipe.meta_batch, recipe.shots, query, self.gen, recipe.task)
            self.window.append(_outer_step(meta_loss(batch), self.opt, self.it, ctx, recipe))
            self.it += 1
            ctx.advance(1)
            if self.it % recipe.log_every == 0 or self.it == recipe.iterations:
                dt = time.perf_counter() - t0
                n = len(self.window)
                ctx.log(
                    {
                        "iteration": self.it,
                        "meta_loss": sum(self.window) / n,
                        "tasks_per_s": n * recipe.meta_batch / dt,
                    }
                )
                self.window, t0 = [], time.perf_counter()
            ctx.periodic_checkpoint(self.it)


def _outer_step(
    loss: torch.Tensor,
    opt: torch.optim.Optimizer,
    it: int,
    ctx: TrainingContext,
    recipe: RegressionRecipe,
) -> float:
    """One Adam step on the meta-loss; a non-finite one stops the run with advice."""
    value = float(loss.detach())
    if not math.isfinite(value):
        lrs = f"meta_lr (now {recipe.meta_lr}) or meta.inner_lr (now {recipe.meta.inner_lr})"
        raise TrainingDivergedError(
            f"meta-loss is {value} at iteration {it + 1}; " + divergence_advice(ctx.run, lrs)
        )
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return value


def load_learner(run: RunDir, recipe: RegressionRecipe) -> MetaLearner:
    """The meta-learner of a run, from its newest checkpoint."""
    learner = build_learner(recipe)
    learner.load_state_dict(run.load_checkpoint()["learner"])
    return learner


def pretrain_baseline(recipe: RegressionRecipe, iterations: int, seed: int) -> MetaLearner:
    """A multi-task-pretrained baseline: the same network fit to pooled tasks by plain MSE.

    Wrapped in a fixed-rate MAML learner with the recipe's inner loop so that it is
    adapted exactly like the meta-learned model.
    """
    torch.manual_seed(seed)
    base = RegressionRecipe(
        hidden=recipe.hidden,
        meta=MetaLearnerConfig(
            algorithm="maml",
            inner_lr=recipe.meta.inner_lr,
            inner_steps=recipe.meta.inner_steps,
            layer_lrs=recipe.meta.layer_lrs,
        ),
    )
    learner = build_learner(base)
    opt = torch.optim.Adam(learner.model.parameters(), lr=recipe.meta_lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(iterations):
        b = sample_sine_batch(recipe.meta_batch, recipe.shots, 1, gen, recipe.task)
        loss = nn.functional.mse_loss(learner.model(b.xs), b.ys)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return learner


def random_baseline(recipe: RegressionRecipe, seed: int) -> MetaLearner:
    """A randomly initialised network adapted with the recipe's fixed inner loop."""
    return pretrain_baseline(recipe, 0, seed)


def load_policy(cfg: Any, state: dict[str, Any]) -> tuple[Any, ActFn | None]:
    """The trained model and its act function, for ``mtrl.load``."""
    learner = build_learner(cfg)
    learner.load_state_dict(state["learner"])
    return learner, None
