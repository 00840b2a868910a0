"""Pure functions of the MAML family: the inner SGD step and the per-task query loss.

Parameters are dicts ``name -> tensor``. ``lrs`` holds, per adapted parameter, a scalar
or a tensor of the parameter's shape (Meta-SGD). Parameters outside ``lrs`` are not
adapted (ANIL adapts only the head). With ``first_order`` the inner gradients are
detached, so the outer gradient is the query gradient at the adapted parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor
from torch.func import functional_call, grad

Params = dict[str, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]


def sgd_step(
    params: Mapping[str, Tensor], grads: Mapping[str, Tensor], lrs: Mapping[str, Tensor]
) -> Params:
    """``p - lr * g`` for every parameter in ``lrs``; the rest pass through unchanged."""
    return {n: p - lrs[n] * grads[n] if n in lrs else p for n, p in params.items()}


def adapt(
    model: torch.nn.Module,
    params: Mapping[str, Tensor],
    buffers: Mapping[str, Tensor],
    x: Tensor,
    y: Tensor,
    loss_fn: LossFn,
    lrs: Mapping[str, Tensor],
    steps: int,
    first_order: bool,
) -> Params:
    """``steps`` inner SGD steps on the support set ``(x, y)``."""

    def support_loss(adapted: Params, frozen: Params) -> Tensor:
        out = functional_call(model, ({**frozen, **adapted}, dict(buffers)), (x,))
        return loss_fn(out, y)

    fast = dict(params)
    for _ in range(steps):
        adapted = {n: fast[n] for n in lrs}
        frozen = {n: p for n, p in fast.items() if n not in lrs}
        grads = grad(support_loss)(adapted, frozen)
        if first_order:
            grads = {n: g.detach() for n, g in grads.items()}
        fast = sgd_step(fast, grads, lrs)
    return fast


def query_loss(
    model: torch.nn.Module,
    params: Mapping[str, Tensor],
    buffers: Mapping[str, Tensor],
    support: tuple[Tensor, Tensor],
    query: tuple[Tensor, Tensor],
    loss_fn: LossFn,
    lrs: Mapping[str, Tensor],
    steps: int,
    first_order: bool,
) -> Tensor:
    """The query loss of one task after adapting on its support set."""
    fast = adapt(model, params, buffers, support[0], support[1], loss_fn, lrs, steps, first_order)
    out = functional_call(model, (fast, dict(buffers)), (query[0],))
    return loss_fn(out, query[1])
