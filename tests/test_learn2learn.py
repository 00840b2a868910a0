"""mtrl's meta-gradients against learn2learn's MAML and MetaSGD on the same model and data.

Runs wherever learn2learn is importable (``bash scripts/setup_learn2learn.sh`` makes
.venv-l2l; CI runs this file there), and is skipped otherwise.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtrl.meta import MetaLearner, MetaLearnerConfig
from mtrl.meta.sine import SineTaskConfig, sample_sine_batch
from mtrl.nets import mlp

l2l = pytest.importorskip("learn2learn")


def _setup(algorithm: str, steps: int) -> tuple[MetaLearner, list[torch.Tensor]]:
    torch.manual_seed(0)
    cfg = MetaLearnerConfig(algorithm=algorithm, inner_lr=0.05, inner_steps=steps)  # type: ignore[arg-type]
    learner = MetaLearner(mlp(1, [40, 40], 1), nn.functional.mse_loss, cfg)
    batch = sample_sine_batch(6, 10, 10, torch.Generator().manual_seed(1), SineTaskConfig())
    return learner, list(batch[:4])


def _l2l_loss(alg: nn.Module, batch: list[torch.Tensor], steps: int) -> torch.Tensor:
    xs, ys, xq, yq = batch
    losses = []
    for t in range(xs.shape[0]):
        clone = alg.clone()
        for _ in range(steps):
            clone.adapt(nn.functional.mse_loss(clone(xs[t]), ys[t]))
        losses.append(nn.functional.mse_loss(clone(xq[t]), yq[t]))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("algorithm", ["maml", "fomaml"])
def test_meta_gradients_agree_with_learn2learn_maml(algorithm: str, steps: int) -> None:
    learner, batch = _setup(algorithm, steps)
    params = list(learner.model.parameters())
    ours = torch.autograd.grad(learner.meta_loss(*batch), params)
    alg = l2l.algorithms.MAML(learner.model, lr=0.05, first_order=algorithm == "fomaml")
    theirs = torch.autograd.grad(_l2l_loss(alg, batch, steps), params)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_meta_gradients_and_rate_gradients_agree_with_learn2learn_metasgd() -> None:
    learner, batch = _setup("metasgd", 1)
    alg = l2l.algorithms.MetaSGD(learner.model, lr=0.05)
    # learner.lrs is keyed by parameter name; learn2learn's list follows parameters()
    our_lrs = [learner.lrs[n.replace(".", "__")] for n, _ in learner.model.named_parameters()]
    with torch.no_grad():  # the same distinct per-element rates in both
        for ours_lr, their_lr in zip(our_lrs, alg.lrs, strict=True):
            ours_lr.uniform_(0.01, 0.1)
            their_lr.copy_(ours_lr)
    params = list(learner.model.parameters())
    ours = torch.autograd.grad(learner.meta_loss(*batch), params + our_lrs)
    theirs = torch.autograd.grad(_l2l_loss(alg, batch, 1), params + list(alg.lrs))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_the_learn2learn_backend_trains_a_sine_recipe(tmp_path: object) -> None:
    from pathlib import Path

    from mtrl.kinds.sine import RegressionEvalConfig, RegressionRecipe, train_regression

    recipe = RegressionRecipe(
        backend="learn2learn",
        iterations=20,
        meta_batch=4,
        log_every=10,
        eval=RegressionEvalConfig(tasks=20, query=10, max_steps=1),
        meta=MetaLearnerConfig(algorithm="metasgd"),
    )
    res = train_regression(recipe, Path(str(tmp_path)) / "run")
    assert res["adaptation"][1]["mse"] > 0
