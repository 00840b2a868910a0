"""The learn2learn-style path (wrap, ``clone()``, ``adapt(loss)``) on mtrl's functional core.

For code written against ``learn2learn.algorithms.MAML`` / ``MetaSGD``::

    maml = mtrl.meta.MAML(model, lr=0.01)
    learner = maml.clone()
    learner.adapt(loss_fn(learner(xs), ys))
    loss_fn(learner(xq), yq).backward()

A clone holds a dict of adapted parameter tensors: its forward is
``torch.func.functional_call`` and the update is :func:`mtrl.meta.functional.sgd_step`.
``learner.module`` is the adapted model as a module (learn2learn's semantics: a
structural copy whose parameters are the adapted tensors), ``learner.parameters()``
the adapted tensors. For many tasks at once prefer :class:`mtrl.meta.MetaLearner`,
which vmaps this loop.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from mtrl.meta.functional import Params, sgd_step
from mtrl.meta.maml import _check_functional, shares_submodules


def materialize(module: nn.Module, params: Mapping[str, Tensor]) -> nn.Module:
    """A structural copy of ``module`` whose parameters are ``params`` (plain tensors,
    so gradients flow back through them); shared submodules stay shared."""
    memo: dict[int, nn.Module] = {}

    def copy_of(mod: nn.Module, prefix: str) -> nn.Module:
        if id(mod) in memo:
            return memo[id(mod)]
        new = copy.copy(mod)
        memo[id(mod)] = new
        new._parameters = {
            name: (params.get(prefix + name, p) if p is not None else None)  # type: ignore[misc]
            for name, p in mod._parameters.items()
        }
        new._buffers = dict(mod._buffers)
        new._modules = {
            name: None if child is None else copy_of(child, f"{prefix}{name}.")
            for name, child in mod._modules.items()
        }
        return new

    # a parameter shared by several submodules is reachable under several names;
    # named_parameters() (and so ``params``) keeps the first
    first = {id(p): n for n, p in module.named_parameters()}
    params = {
        name: params[first[id(p)]]
        for name, p in module.named_parameters(remove_duplicate=False)
        if first[id(p)] in params
    }
    return copy_of(module, "")


class FastLearner:
    """One task's adapted copy of a wrapped model; differentiable back to the original."""

    def __init__(
        self,
        module: nn.Module,
        params: Params,
        lrs: Mapping[str, Tensor],
        first_order: bool,
        allow_unused: bool,
        allow_nograd: bool = False,
    ) -> None:
        self._original = module
        self.params = params
        self.lrs = dict(lrs)
        self.first_order = first_order
        self.allow_unused = allow_unused
        self.allow_nograd = allow_nograd
        self._module: nn.Module | None = None
        self._shared = shares_submodules(module)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._shared:  # functional_call mis-restores shared submodules: run a copy
            return self.module(*args, **kwargs)
        buffers = dict(self._original.named_buffers())
        return functional_call(self._original, (self.params, buffers), args, kwargs)

    forward = __call__

    @property
    def module(self) -> nn.Module:
        """The adapted model as a module (calling it equals calling the learner)."""
        if self._module is None:
            self._module = materialize(self._original, self.params)
        return self._module

    def parameters(self) -> Iterator[Tensor]:
        """The adapted parameters, in the wrapped model's ``parameters()`` order."""
        return iter(list(self.params.values()))

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        return iter(list(self.params.items()))

    def state_dict(self) -> dict[str, Tensor]:
        """Adapted parameters and the model's buffers, by ``state_dict`` name."""
        return {**self.params, **dict(self._original.named_buffers())}

    def adapt(
        self,
        loss: Tensor,
        first_order: bool | None = None,
        allow_unused: bool | None = None,
        allow_nograd: bool | None = None,
    ) -> None:
        """One SGD step on ``loss`` (second order unless ``first_order``). Parameters
        that do not require grad raise unless ``allow_nograd`` (then they stay put);
        parameters ``loss`` does not use raise unless ``allow_unused`` (zero step)."""
        fo = self.first_order if first_order is None else first_order
        unused = self.allow_unused if allow_unused is None else allow_unused
        nograd = self.allow_nograd if allow_nograd is None else allow_nograd
        names = [n for n in self.lrs if not nograd or self.params[n].requires_grad]
        frozen = [n for n in names if not self.params[n].requires_grad]
        if frozen:
            raise RuntimeError(
                f"parameters {frozen} do not require grad; pass allow_nograd=True to leave "
                "them unadapted"
            )
        grads = torch.autograd.grad(
            loss,
            [self.params[n] for n in names],
            create_graph=not fo,
            retain_graph=not fo,
            allow_unused=unused or nograd,
        )
        gd = {
            n: torch.zeros_like(self.params[n]) if g is None else g
            for n, g in zip(names, grads, strict=True)
        }
        if fo:
            gd = {n: g.detach() for n, g in gd.items()}
        self.params = sgd_step(self.params, gd, {n: self.lrs[n] for n in names})
        self._module = None

    def clone(self) -> FastLearner:
        """A further copy that adapts on from here (the graph is kept)."""
        return FastLearner(
            self._original,
            dict(self.params),
            self.lrs,
            self.first_order,
            self.allow_unused,
            self.allow_nograd,
        )


class MAML(nn.Module):
    """Wraps ``model`` for MAML with a fixed inner learning rate ``lr`` (learn2learn's
    signature: ``first_order``, ``allow_unused``, ``allow_nograd``)."""

    def __init__(
        self,
        model: nn.Module,
        lr: float,
        first_order: bool = False,
        allow_unused: bool | None = None,
        allow_nograd: bool = False,
    ) -> None:
        super().__init__()
        _check_functional(model)
        self.module = model
        self.lr = lr
        self.first_order = first_order
        self.allow_nograd = allow_nograd
        self.allow_unused = allow_nograd if allow_unused is None else allow_unused
        self._fast: FastLearner | None = None  # set by adapt() on the wrapper itself

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._fast is not None:
            return self._fast(*args, **kwargs)
        return self.module(*args, **kwargs)

    def _lrs(self) -> dict[str, Tensor]:
        return {n: torch.tensor(self.lr, dtype=p.dtype) for n, p in self.module.named_parameters()}

    def clone(
        self,
        first_order: bool | None = None,
        allow_unused: bool | None = None,
        allow_nograd: bool | None = None,
    ) -> FastLearner:
        """A fast learner starting at the current parameters."""
        if self._fast is not None:
            return self._fast.clone()
        return FastLearner(
            self.module,
            dict(self.module.named_parameters()),
            self._lrs(),
            self.first_order if first_order is None else first_order,
            self.allow_unused if allow_unused is None else allow_unused,
            self.allow_nograd if allow_nograd is None else allow_nograd,
        )

    def adapt(
        self,
        loss: Tensor,
        first_order: bool | None = None,
        allow_unused: bool | None = None,
        allow_nograd: bool | None = None,
    ) -> None:
        """Adapt the wrapper itself (as learn2learn does): its forward then uses the
        adapted parameters; ``clone()`` starts from them."""
        fast = self._fast if self._fast is not None else self.clone()
        fast.adapt(loss, first_order, allow_unused, allow_nograd)
        self._fast = fast


class MetaSGD(MAML):
    """MAML with a learned per-element inner learning rate, initialised to ``lr`` or
    given as ``lrs`` (one tensor per parameter, in ``model.parameters()`` order)."""

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1.0,
        first_order: bool = False,
        lrs: Sequence[Tensor] | None = None,
        allow_unused: bool | None = None,
        allow_nograd: bool = False,
    ) -> None:
        super().__init__(model, lr, first_order, allow_unused, allow_nograd)
        named = list(model.named_parameters())
        if lrs is None:
            rates = [torch.full_like(p.detach(), lr) for _, p in named]
        else:
            rates = [torch.as_tensor(r).detach().clone() for r in lrs]
            if len(rates) != len(named):
                raise ValueError(f"lrs has {len(rates)} tensors; the model has {len(named)}")
        self.lrs = nn.ParameterList([nn.Parameter(r) for r in rates])
        self._rate_index = {n: i for i, (n, _) in enumerate(named)}

    def _lrs(self) -> dict[str, Tensor]:
        return {n: self.lrs[i] for n, i in self._rate_index.items()}
