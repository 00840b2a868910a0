"""The meta-iteration loop the meta-RL kinds share: a batch of tasks drawn each
iteration, one learner step on it, a log row, periodic checkpoints, exact resume.

What a learner adds (MAML-RL's inner and outer updates, RL²'s recurrent PPO) lives in
its kind; this loop only orders the parts and says what a checkpoint holds besides the
learner's own state: the task stream, torch's RNG, the iteration and the last row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from mtrl.loops.context import TrainingContext
from mtrl.tasks import Task
from mtrl.training import init_weights


class IterationLearner(Protocol):
    """One meta-learner: ``step`` trains on a batch of tasks and returns its numbers
    (``pre_return``/``post_return``: before and after adaptation, shown by progress;
    ``env_steps``: the env steps it sampled, which the loop logs as a running total)."""

    @property
    def module(self) -> nn.Module:
        """The weights ``--init-from`` fills."""

    def step(self, tasks: list[Task]) -> dict[str, float]: ...

    def checkpoint(self) -> dict[str, Any]: ...

    def restore(self, state: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


def task_stream(seed: int) -> np.random.Generator:
    """The stream training tasks are drawn from (disjoint from evaluation's)."""
    return np.random.default_rng(np.random.SeedSequence([seed, 0]))


def eval_stream(seed: int) -> np.random.Generator:
    """The stream held-out evaluation tasks are drawn from."""
    return np.random.default_rng(np.random.SeedSequence([seed, 1]))


def train_iterations(
    recipe: Any,
    run_dir: str | Path,
    learner_fn: Callable[[], IterationLearner],
    draw: Callable[[np.random.Generator], list[Task]],
    *,
    resume: bool,
    progress: bool,
    init_from: str | Path | None,
    init_key: str,
    held_out: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``recipe.iterations`` learner steps on tasks drawn by ``draw`` from the recipe's
    task stream; Ctrl-C stops between iterations with a checkpoint, and a resume
    continues exactly (the learner, the task stream and torch's RNG restored). At the
    end, ``held_out`` (given the learner's final state) adds its held-out report."""
    ctx = TrainingContext(recipe, run_dir, resume)  # seeds the learner's initialisation
    learner = learner_fn()
    if not resume:
        init_weights(learner.module, init_from, init_key)
    run = _Iterations(recipe, learner, draw, ctx)
    ctx.start(
        run.state,
        total=recipe.iterations,
        step=run.it,
        progress=progress,
        desc="meta-train",
        unit="it",
    )
    try:
        with ctx.guarded(lambda: run.it):
            run.train()
        final = learner.checkpoint()
        ctx.save(run.it)  # before close: a learner's env workers hold part of its state
    finally:
        learner.close()
    results: dict[str, Any] = {"iterations": run.it, "env_steps": run.env_steps}
    results.update({f"final_{k}": v for k, v in run.last.items()})
    if held_out is not None:
        results.update(held_out(final))
    ctx.finish(results, kind=recipe.kind, env=recipe.env)
    return results


class _Iterations:
    """The loop's state besides the learner's own (the task stream, the iteration, the
    env steps so far and the last row), restored from a checkpoint where there is one."""

    def __init__(
        self,
        recipe: Any,
        learner: IterationLearner,
        draw: Callable[[np.random.Generator], list[Task]],
        ctx: TrainingContext,
    ) -> None:
        self.recipe, self.learner, self.draw, self.ctx = recipe, learner, draw, ctx
        self.rng = task_stream(recipe.seed)
        self.it, self.env_steps = 0, 0
        self.last: dict[str, float] = {}
        state = ctx.state
        if state is not None:
            learner.restore(state)
            self.rng.bit_generator.state = state["task_rng"]
            torch.set_rng_state(state["torch_rng"])
            self.it, self.last = int(state["iteration"]), dict(state.get("last", {}))
            self.env_steps = int(state.get("env_steps", 0))

    def state(self, it: int) -> dict[str, Any]:
        """A checkpoint's contents at iteration ``it``."""
        return {
            **self.learner.checkpoint(),
            "task_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "iteration": it,
            "env_steps": self.env_steps,
            "last": dict(self.last),
        }

    def train(self) -> None:
        """Learner steps until the recipe's iterations, logging and checkpointing."""
        ctx, every, total = self.ctx, self.recipe.log_every, self.recipe.iterations
        while self.it < total:
            ctx.check()  # Ctrl-C stops between iterations
            t0 = time.perf_counter()
            last = self.learner.step(self.draw(self.rng))
            self.env_steps += int(last.pop("env_steps"))
            self.it, self.last = self.it + 1, last
            pre, post = f"{last['pre_return']:.1f}", f"{last['post_return']:.1f}"
            ctx.advance(1, pre=pre, post=post)
            if self.it % every == 0 or self.it == total:
                took = time.perf_counter() - t0
                ctx.log(
                    {"iteration": self.it, "env_steps": self.env_steps, **last, "seconds": took}
                )
            ctx.periodic_checkpoint(self.it)
