"""`mtrl.meta.MAML` / `MetaSGD` behave as learn2learn's do for code written against them:
clones act as the adapted model (call, ``.module``, ``.parameters()``), first-order
gradients, frozen and unused parameters, shared submodules, Meta-SGD's rates."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mtrl.meta import MAML, MetaLearner, MetaLearnerConfig, MetaSGD, UnsupportedModuleError


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 20), nn.Sigmoid(), nn.Linear(20, 20)
    )
    net.register_buffer("unused_buffer", torch.zeros(1, 2, 3))
    return net


def _x() -> torch.Tensor:
    return torch.randn(7, 10, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("wrapper", [MAML, MetaSGD])
@pytest.mark.parametrize("first_order", [False, True])
def test_a_fresh_clone_computes_the_model(wrapper: type[MAML], first_order: bool) -> None:
    model = _model()
    meta = wrapper(model, lr=0.1, first_order=first_order)
    for clone in (meta.clone(), meta.clone()):
        torch.testing.assert_close(clone(_x()), model(_x()))
        torch.testing.assert_close(clone.module(_x()), model(_x()))


def test_the_clones_module_and_parameters_are_the_adapted_ones() -> None:
    model = _model()
    clone = MAML(model, lr=0.1).clone()
    clone.adapt(clone(_x()).norm())
    adapted = clone(_x())
    assert not torch.allclose(adapted, model(_x()))
    torch.testing.assert_close(clone.module(_x()), adapted)  # not the un-adapted model
    torch.testing.assert_close(
        clone.module[0](_x()), _x() @ clone.params["0.weight"].T + clone.params["0.bias"]
    )
    names = [n for n, _ in model.named_parameters()]
    assert [n for n, _ in clone.named_parameters()] == names
    assert all(p is clone.params[n] for p, n in zip(clone.parameters(), names, strict=True))
    assert set(clone.state_dict()) == {*names, "unused_buffer"}


def test_first_order_adaptation_gives_the_gradient_at_the_adapted_weights() -> None:
    model = _model()
    clone = MAML(model, lr=0.01, first_order=True).clone()
    for _ in range(3):
        clone.adapt(clone(_x()).norm())
    reference = copy.deepcopy(model)
    with torch.no_grad():
        for r, p in zip(reference.parameters(), clone.parameters(), strict=True):
            r.copy_(p)
    reference(_x()).norm().backward()
    clone(_x()).norm().backward()
    for p, r in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, r.grad)


@pytest.mark.parametrize("wrapper", [MAML, MetaSGD])
def test_adaptation_lowers_the_loss_and_reaches_every_meta_parameter(wrapper: type[MAML]) -> None:
    meta = wrapper(_model(), lr=0.1)
    clone = meta.clone()
    before = clone(_x()).norm()
    clone.adapt(before)
    after = clone(_x()).norm()
    assert after <= before
    after.backward()
    for p in meta.parameters():  # MetaSGD: the learned rates too
        assert p.grad is not None and p.grad.norm() > 0


def test_unused_parameters_need_allow_unused() -> None:
    def half_loss(clone: object) -> torch.Tensor:
        return sum(p.norm() for i, p in enumerate(clone.parameters()) if i % 2 == 0)  # type: ignore[attr-defined]

    with pytest.raises(RuntimeError):
        MAML(_model(), lr=0.1).clone().adapt(half_loss(MAML(_model(), lr=0.1).clone()))
    meta = MAML(_model(), lr=0.1, allow_unused=True)
    clone = meta.clone()
    clone.adapt(half_loss(clone))
    half_loss(clone).backward()
    assert all(p.grad is not None for i, p in enumerate(meta.parameters()) if i % 2 == 0)


def test_frozen_parameters_need_allow_nograd_and_stay_put() -> None:
    model = _model()
    model[2].weight.requires_grad = False
    clone = MAML(model, lr=0.1).clone()
    with pytest.raises(RuntimeError, match="allow_nograd"):
        clone.adapt(sum(p.norm() for p in clone.parameters()))
    clone.adapt(sum(p.norm() for p in clone.parameters()), allow_nograd=True)
    sum(p.norm() for p in clone.parameters()).backward()
    assert model[2].weight.grad is None
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    frozen = model[2].weight.detach().clone()
    clone = MAML(model, lr=0.1, allow_nograd=True).clone()
    clone.adapt(sum(p.norm() for p in clone.parameters()))
    torch.testing.assert_close(clone.params["2.weight"], frozen)


def test_shared_submodules_adapt_once_and_stay_shared() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunk = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
            self.head = nn.Conv2d(8, 4, 3, 2, 1)
            self.net = nn.Sequential(self.trunk, self.head)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    model = Shared()
    x = torch.randn(2, 3, 16, 16)
    clone = MAML(model, lr=0.1).clone()
    assert len(list(clone.parameters())) == 4
    clone.adapt(sum(p.norm() for p in clone.parameters()))
    torch.testing.assert_close(clone.module(x), clone(x))
    assert clone.module.trunk is clone.module.net[0]
    sum(p.norm() for p in clone.parameters()).backward()
    assert all(p.is_leaf and p.grad is not None for p in model.parameters())  # model intact
    with pytest.raises(UnsupportedModuleError, match="two names"):
        MetaLearner(model, nn.functional.mse_loss, MetaLearnerConfig())


def test_adapting_the_wrapper_itself_moves_its_forward() -> None:
    model = _model()
    maml = MAML(model, lr=0.1)
    before = maml(_x())
    maml.adapt(maml(_x()).norm())
    assert maml(_x()).norm() < before.norm()
    torch.testing.assert_close(maml.clone()(_x()), maml(_x()))


def test_metasgd_rates_are_tensors_per_parameter() -> None:
    model = _model()
    meta = MetaSGD(model, lr=0.1)
    n = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in meta.parameters()) == 2 * n
    for rate, p in zip(meta.lrs, model.parameters(), strict=True):
        assert rate.shape == p.shape and torch.all(rate == 0.1)
    given = [torch.full_like(p, 0.5) for p in model.parameters()]
    meta = MetaSGD(model, lrs=given)
    clone = meta.clone()
    w = model[0].weight
    clone.adapt(clone.params["0.weight"].sum(), allow_unused=True)
    torch.testing.assert_close(clone.params["0.weight"], w - 0.5)
    with pytest.raises(ValueError, match="lrs has 1"):
        MetaSGD(model, lrs=given[:1])


def test_batchnorm_in_training_mode_is_refused_with_its_reason() -> None:
    with pytest.raises(UnsupportedModuleError, match="running"):
        MAML(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), lr=0.1)
