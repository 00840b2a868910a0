"""Meta-gradients of the functional fast path against a slow, explicit reference loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from mtrl.errors import MtrlError
from mtrl.meta import (
    MAML,
    LayerLr,
    MetaLearner,
    MetaLearnerConfig,
    MetaSGD,
    UnsupportedModuleError,
)

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


@pytest.mark.parametrize("batching", ["auto", "vmap"])
@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "anil"])
@pytest.mark.parametrize("steps", [1, 3])
def test_meta_gradients_match_reference_loop(algorithm: str, steps: int, batching: str) -> None:
    model = _model()
    cfg = MetaLearnerConfig(
        algorithm=algorithm,  # type: ignore[arg-type]
        inner_lr=0.05,
        inner_steps=steps,
        batching=batching,  # type: ignore[arg-type]
    )
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


@pytest.mark.parametrize("batching", ["auto", "vmap"])
def test_metasgd_learning_rate_gradients_match_reference(batching: str) -> None:
    model = _model()
    learner = MetaLearner(
        model,
        nn.functional.mse_loss,
        MetaLearnerConfig(algorithm="metasgd", inner_lr=0.05, inner_steps=2, batching=batching),  # type: ignore[arg-type]
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


class _Residual(nn.Module):
    """Not an nn.Sequential: MetaLearner must take the vmap path for it."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(1, 8)
        self.out = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.inp(x))
        return self.out(h + torch.tanh(h))


def test_custom_modules_use_the_vmap_path_and_match_the_reference() -> None:
    torch.manual_seed(0)
    model = _Residual().double()
    learner = MetaLearner(model, nn.functional.mse_loss, MetaLearnerConfig(inner_lr=0.05))
    assert learner._stack is None
    batch = _batch()
    params = list(model.parameters())
    lr = torch.tensor(0.05, dtype=torch.float64)
    ref = _reference(model, batch, {n: lr for n in learner.adapted}, 1, False)
    for a, b in zip(_grads(learner.meta_loss(*batch), params), _grads(ref, params), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_per_layer_learning_rates_apply_by_longest_prefix() -> None:
    model = _model()
    cfg = MetaLearnerConfig(inner_lr=0.05, layer_lrs=[LayerLr("4", 0.2), LayerLr("4.b", 0.3)])
    learner = MetaLearner(model, nn.functional.mse_loss, cfg)
    assert learner.fixed_lrs["0.weight"] == 0.05
    assert learner.fixed_lrs["4.weight"] == 0.2
    assert learner.fixed_lrs["4.bias"] == 0.3
    batch = _batch()
    params = list(model.parameters())
    lrs = {n: torch.tensor(v, dtype=torch.float64) for n, v in learner.fixed_lrs.items()}
    ref = _reference(model, batch, lrs, 1, False)
    for a, b in zip(_grads(learner.meta_loss(*batch), params), _grads(ref, params), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    with pytest.raises(MtrlError, match="matches no adapted parameter"):
        MetaLearner(model, nn.functional.mse_loss, MetaLearnerConfig(layer_lrs=[LayerLr("9")]))


@pytest.mark.parametrize("algorithm", ["maml", "metasgd"])
def test_adaptation_losses_agree_between_paths_and_with_adapt(algorithm: str) -> None:
    model = _model()
    xs, ys, xq, yq = _batch()
    curves = []
    for batching in ("auto", "vmap"):
        cfg = MetaLearnerConfig(algorithm=algorithm, inner_lr=0.05, batching=batching)  # type: ignore[arg-type]
        learner = MetaLearner(model, nn.functional.mse_loss, cfg)
        curves.append(learner.adaptation_losses(xs, ys, xq, yq, max_steps=3))
    torch.testing.assert_close(curves[0], curves[1], rtol=1e-9, atol=1e-12)
    assert curves[0].shape == (4, TASKS)
    fast = learner.adapt(xs[1], ys[1], steps=2)
    direct = nn.functional.mse_loss(functional_call(model, fast, (xq[1],)), yq[1])
    torch.testing.assert_close(curves[0][2, 1], direct.detach())


def test_learn2learn_style_clone_adapt_matches_meta_loss() -> None:
    model = _model()
    xs, ys, xq, yq = _batch()
    params = list(model.parameters())
    for algorithm, wrapper in (("maml", MAML), ("metasgd", MetaSGD)):
        learner = MetaLearner(
            model,
            nn.functional.mse_loss,
            MetaLearnerConfig(algorithm=algorithm, inner_lr=0.05, inner_steps=2),  # type: ignore[arg-type]
        )
        wrapped = wrapper(model, lr=0.05)
        losses = []
        for t in range(TASKS):
            fast = wrapped.clone()
            for _ in range(2):
                fast.adapt(nn.functional.mse_loss(fast(xs[t]), ys[t]))
            losses.append(nn.functional.mse_loss(fast(xq[t]), yq[t]))
        compat = torch.stack(losses).mean()
        for a, b in zip(
            _grads(learner.meta_loss(xs, ys, xq, yq), params), _grads(compat, params), strict=True
        ):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("algorithm", ["maml", "metasgd"])
def test_compiled_meta_loss_gives_the_eager_gradients(algorithm: str) -> None:
    model = _model()
    batch = _batch()
    grads = []
    for compile_ in (False, True):
        cfg = MetaLearnerConfig(algorithm=algorithm, inner_lr=0.05, compile=compile_)  # type: ignore[arg-type]
        learner = MetaLearner(model, nn.functional.mse_loss, cfg)
        wanted = list(model.parameters()) + list(learner.lrs.values())
        grads.append(_grads(learner.meta_loss(*batch), wanted))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


def test_meta_loss_refuses_batches_without_a_task_axis_or_with_misfit_targets() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    learner = MetaLearner(model, torch.nn.functional.mse_loss, MetaLearnerConfig())
    x = torch.randn(10, 1)
    with pytest.raises(ValueError, match="task axis"):
        learner.meta_loss(x, x, x, x)
    xs, bad = torch.randn(4, 10, 1), torch.randn(4, 10, 3)
    with pytest.raises(ValueError, match="model outputs 1"):
        learner.meta_loss(xs, bad, xs, bad)
    with pytest.raises(ValueError, match="same shots"):
        learner.meta_loss(xs, torch.randn(4, 9, 1), xs, xs)
    assert torch.isfinite(learner.meta_loss(xs, xs, xs, xs))
