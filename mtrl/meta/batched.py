"""Stacked-parameter fast path for MLPs: every task's copy of a layer in one ``bmm``.

For an ``nn.Sequential`` of ``nn.Linear`` layers and element-wise activations, the
per-task parameters of a meta-batch are the shared parameters expanded to
``[tasks, ...]``. One ``autograd.grad`` of the summed task losses then gives every
task's own inner gradient (task ``t``'s loss depends only on slice ``t``), and the
outer backward is ordinary double-backward. Same math as the ``vmap`` path, with far
less dispatch overhead per operation; :class:`~mtrl.meta.maml.MetaLearner` picks it
automatically and falls back to ``vmap`` for any other model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn
from torch.func import vmap

from mtrl.meta.functional import LossFn, Params, sgd_step

_ELEMENTWISE = (
    nn.ReLU,
    nn.Tanh,
    nn.ELU,
    nn.SiLU,
    nn.GELU,
    nn.LeakyReLU,
    nn.Sigmoid,
    nn.Softplus,
    nn.Identity,
)

Layers = list[tuple[str, nn.Module]]


def linear_stack(model: nn.Module) -> Layers | None:
    """The layers of an ``nn.Sequential`` of Linear and element-wise layers, else None."""
    if type(model) is not nn.Sequential:
        return None
    layers = list(model.named_children())
    if not layers or not all(isinstance(m, (nn.Linear, *_ELEMENTWISE)) for _, m in layers):
        return None
    return layers


def stacked_forward(layers: Layers, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """``x`` ``[tasks, n, in]`` through the layers; 3-D parameters are per task."""
    h = x
    for name, mod in layers:
        if not isinstance(mod, nn.Linear):
            h = mod(h)
            continue
        w = params[f"{name}.weight"]
        b = params.get(f"{name}.bias")
        if w.dim() == 2:
            h = nn.functional.linear(h, w, b)
        elif b is None:
            h = torch.bmm(h, w.transpose(1, 2))
        else:
            bias = b.unsqueeze(1) if b.dim() == 2 else b
            h = torch.baddbmm(bias, h, w.transpose(1, 2))
    return h


def task_losses(loss_fn: LossFn, out: Tensor, y: Tensor) -> Tensor:
    """``[tasks]`` losses: ``loss_fn`` applied to each task's slice."""
    return vmap(loss_fn)(out, y)


TaskLossesFn = Callable[[Params], Tensor]  # per-task params -> [tasks] losses


def stacked_sgd(
    params: Mapping[str, Tensor],
    lrs: Mapping[str, Tensor],
    tasks: int,
    task_losses_fn: TaskLossesFn,
    steps: int,
    first_order: bool,
    expand: bool = True,
) -> Params:
    """``steps`` inner SGD steps of every task at once on ``task_losses_fn``.

    ``params`` are shared (expanded here to ``[tasks, ...]``) or already per task with
    ``expand=False``. Task ``t``'s loss must depend only on slice ``t``; then one
    ``autograd.grad`` of the summed losses gives each task its own gradient.
    """
    fast = {
        n: p.unsqueeze(0).expand(tasks, *p.shape) if expand and n in lrs else p
        for n, p in params.items()
    }
    names = list(lrs)
    for _ in range(steps):
        total = task_losses_fn(fast).sum()
        grads = torch.autograd.grad(
            total, [fast[n] for n in names], create_graph=not first_order, allow_unused=True
        )
        gd = {
            n: torch.zeros_like(fast[n]) if g is None else g
            for n, g in zip(names, grads, strict=True)
        }
        fast = sgd_step(fast, gd, lrs)
    return fast


def stacked_adapt(
    layers: Layers,
    params: Mapping[str, Tensor],
    x: Tensor,
    y: Tensor,
    loss_fn: LossFn,
    lrs: Mapping[str, Tensor],
    steps: int,
    first_order: bool,
    expand: bool = True,
) -> Params:
    """Per-task adapted parameters ``[tasks, ...]`` of a supervised MLP on ``(x, y)``."""

    def losses(fast: Params) -> Tensor:
        return task_losses(loss_fn, stacked_forward(layers, fast, x), y)

    return stacked_sgd(params, lrs, x.shape[0], losses, steps, first_order, expand)
