"""The learn2learn-style path (wrap, ``clone()``, ``adapt(loss)``) on mtrl's functional core.

For code written against ``learn2learn.algorithms.MAML`` / ``MetaSGD``::

    maml = mtrl.meta.MAML(model, lr=0.01)
    learner = maml.clone()
    learner.adapt(loss_fn(learner(xs), ys))
    loss_fn(learner(xq), yq).backward()

A clone is a dict of parameter tensors, not a copy of the module: the forward is
``torch.func.functional_call`` and the update is :func:`mtrl.meta.functional.sgd_step`.
For many tasks at once prefer :class:`mtrl.meta.MetaLearner`, which vmaps this loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from mtrl.meta.functional import Params, sgd_step
from mtrl.meta.maml import _check_functional


class FastLearner:
    """One task's adapted copy of a wrapped model; differentiable back to the original."""

    def __init__(
        self,
        module: nn.Module,
        params: Params,
        lrs: Mapping[str, Tensor],
        first_order: bool,
        allow_unused: bool,
    ) -> None:
        self.module = module
        self.params = params
        self.lrs = dict(lrs)
        self.first_order = first_order
        self.allow_unused = allow_unused

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        buffers = dict(self.module.named_buffers())
        return functional_call(self.module, (self.params, buffers), args, kwargs)

    def adapt(self, loss: Tensor, first_order: bool | None = None) -> None:
        """One SGD step on ``loss`` (second order unless ``first_order``)."""
        fo = self.first_order if first_order is None else first_order
        names = list(self.lrs)
        grads = torch.autograd.grad(
            loss,
            [self.params[n] for n in names],
            create_graph=not fo,
            retain_graph=not fo,
            allow_unused=self.allow_unused,
        )
        gd = {
            n: torch.zeros_like(self.params[n]) if g is None else g
            for n, g in zip(names, grads, strict=True)
        }
        if fo:
            gd = {n: g.detach() for n, g in gd.items()}
        self.params = sgd_step(self.params, gd, self.lrs)

    def clone(self) -> FastLearner:
        """A further copy that adapts on from here (the graph is kept)."""
        return FastLearner(
            self.module, dict(self.params), self.lrs, self.first_order, self.allow_unused
        )


class MAML(nn.Module):
    """Wraps ``model`` for MAML with a fixed inner learning rate ``lr``."""

    def __init__(
        self, model: nn.Module, lr: float, first_order: bool = False, allow_unused: bool = False
    ) -> None:
        super().__init__()
        _check_functional(model)
        self.module = model
        self.lr = lr
        self.first_order = first_order
        self.allow_unused = allow_unused

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def _lrs(self) -> dict[str, Tensor]:
        return {n: torch.tensor(self.lr, dtype=p.dtype) for n, p in self.module.named_parameters()}

    def clone(self, first_order: bool | None = None) -> FastLearner:
        """A fast learner starting at the current parameters."""
        fo = self.first_order if first_order is None else first_order
        params: Params = {n: p for n, p in self.module.named_parameters()}
        return FastLearner(self.module, params, self._lrs(), fo, self.allow_unused)


class MetaSGD(MAML):
    """MAML with a learned per-element inner learning rate (``self.lrs``), initialised to ``lr``."""

    def __init__(
        self, model: nn.Module, lr: float, first_order: bool = False, allow_unused: bool = False
    ) -> None:
        super().__init__(model, lr, first_order, allow_unused)
        self.lrs = nn.ParameterDict(
            {
                n.replace(".", "__"): nn.Parameter(torch.full_like(p.detach(), lr))
                for n, p in model.named_parameters()
            }
        )

    def _lrs(self) -> dict[str, Tensor]:
        return {n: self.lrs[n.replace(".", "__")] for n, _ in self.module.named_parameters()}
