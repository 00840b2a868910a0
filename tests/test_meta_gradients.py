"""Meta-gradients of the functional fast path against a slow, explicit reference loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from mtrl.meta import MetaLearner, MetaLearnerConfig, UnsupportedModuleError

TASKS, SHOTS = 4, 5


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1)
    ).double()


def _batch() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    xs, xq = (
        torch.rand(TASKS, SHOTS, 1, generator=g, dtype=torch.float64) * 10 - 5 for _ in range(2)
    )
    amp = torch.rand(TASKS, 1, 1, generator=g, dtype=torch.float64) * 4 + 1
    return xs, amp * torch.sin(xs), xq, amp * torch.sin(xq)


def _reference(
    model: nn.Module,
    batch: tuple[torch.Tensor, ...],
    lrs: dict[str, torch.Tensor],
    steps: int,
    first_order: bool,
) -> torch.Tensor:
    """Unrolled inner loop per task with explicit autograd.grad(create_graph=...)."""
    xs, ys, xq, yq = batch
    params = dict(model.named_parameters())
    total = torch.zeros((), dtype=torch.float64)
    for t in range(TASKS):
        fast = dict(params)
        for _ in range(steps):
            loss = nn.functional.mse_loss(functional_call(model, fast, (xs[t],)), ys[t])
            names = list(lrs)
            grads = torch.autograd.grad(
                loss, [fast[n] for n in names], create_graph=not first_order
            )
            fast = {**fast, **{n: fast[n] - lrs[n] * g for n, g in zip(names, grads, strict=True)}}
        total = total + nn.functional.mse_loss(functional_call(model, fast, (xq[t],)), yq[t])
    return total / TASKS


def _grads(loss: torch.Tensor, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, tensors, allow_unused=False))


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "anil"])
@pytest.mark.parametrize("steps", [1, 3])
def test_meta_gradients_match_reference_loop(algorithm: str, steps: int) -> None:
    model = _model()
    cfg = MetaLearnerConfig(algorithm=algorithm, inner_lr=0.05, inner_steps=steps)  # type: ignore[arg-type]
    learner = MetaLearner(model, nn.functional.mse_loss, cfg)
    batch = _batch()
    params = list(model.parameters())
    fast = _grads(learner.meta_loss(*batch), params)
    lr = torch.tensor(0.05, dtype=torch.float64)
    ref = _grads(
        _reference(model, batch, {n: lr for n in learner.adapted}, steps, algorithm == "fomaml"),
        params,
    )
    for a, b in zip(fast, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_second_order_differs_from_first_order() -> None:
    model = _model()
    batch = _batch()
    g = {}
    for algo in ("maml", "fomaml"):
        learner = MetaLearner(
            model, nn.functional.mse_loss, MetaLearnerConfig(algorithm=algo, inner_lr=0.05)
        )  # type: ignore[arg-type]
        g[algo] = _grads(learner.meta_loss(*batch), list(model.parameters()))
    assert any(not torch.allclose(a, b) for a, b in zip(g["maml"], g["fomaml"], strict=True))


def test_metasgd_learning_rate_gradients_match_reference() -> None:
    model = _model()
    learner = MetaLearner(
        model,
        nn.functional.mse_loss,
        MetaLearnerConfig(algorithm="metasgd", inner_lr=0.05, inner_steps=2),
    )
    with torch.no_grad():  # distinct per-element rates, so a shared-rate bug would show
        for p in learner.lrs.values():
            p.uniform_(0.01, 0.1)
    batch = _batch()
    wanted = list(model.parameters()) + list(learner.lrs.values())
    fast = _grads(learner.meta_loss(*batch), wanted)
    lrs = {n: learner.lrs[n.replace(".", "__")] for n in learner.adapted}
    ref = _grads(_reference(model, batch, lrs, 2, False), wanted)
    for a, b in zip(fast, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_anil_leaves_the_body_unchanged_in_the_inner_loop() -> None:
    model = _model()
    learner = MetaLearner(
        model, nn.functional.mse_loss, MetaLearnerConfig(algorithm="anil", inner_steps=3)
    )
    assert learner.adapted == ["4.weight", "4.bias"]
    xs, ys, _, _ = _batch()
    fast = learner.adapt(xs[0], ys[0])
    for name, p in model.named_parameters():
        same = torch.equal(fast[name], p)
        assert same == (name not in learner.adapted)


def test_batchnorm_in_training_mode_is_refused_with_the_reason() -> None:
    model = nn.Sequential(nn.Linear(1, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    with pytest.raises(UnsupportedModuleError, match="running statistics"):
        MetaLearner(model, nn.functional.mse_loss, MetaLearnerConfig())
    model.eval()
    MetaLearner(model, nn.functional.mse_loss, MetaLearnerConfig())


def test_mismatched_task_batches_are_a_clear_error() -> None:
    learner = MetaLearner(_model(), nn.functional.mse_loss, MetaLearnerConfig())
    xs, ys, xq, yq = _batch()
    with pytest.raises(ValueError, match="same number of tasks"):
        learner.meta_loss(xs, ys, xq[:2], yq[:2])
