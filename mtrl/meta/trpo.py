"""A trust-region policy step (Schulman et al. 2015), the outer update of the original
MAML-RL (Finn et al. 2017): the natural-gradient direction by conjugate gradient on
Hessian-vector products of the mean KL, scaled to the KL bound, then a backtracking
line search that accepts the first step improving the surrogate within the bound.

The functions take closures over the parameters, so the same step serves a plain
policy and one whose loss goes through an inner adaptation (MAML-TRPO): the KL's
Hessian-vector product is then the second derivative through the adapted policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils import parameters_to_vector, vector_to_parameters


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, tol: float = 1e-10
) -> Tensor:
    """``x`` with ``A x ≈ b`` for a symmetric positive-definite ``A`` given as
    ``matvec(v) = A v`` (exact after ``len(b)`` iterations in exact arithmetic)."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        if rr <= tol:
            break
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def hessian_vector_product(
    scalar_fn: Callable[[], Tensor], params: Sequence[Tensor], damping: float = 0.0
) -> Callable[[Tensor], Tensor]:
    """``v -> (∇² f) v + damping * v`` for ``f = scalar_fn()`` at ``params``: the
    gradient's graph is built once, and each product is one more backward through it."""
    grads = torch.autograd.grad(scalar_fn(), params, create_graph=True)
    flat = torch.cat([g.reshape(-1) for g in grads])

    def matvec(v: Tensor) -> Tensor:
        hv = torch.autograd.grad(flat @ v, params, retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]).detach() + damping * v

    return matvec


@dataclass(frozen=True)
class TRPOResult:
    """What the step did: the surrogate and KL after it, the step fraction taken (0:
    every candidate rejected, parameters unchanged) and the line-search tries."""

    surrogate_before: float
    surrogate_after: float
    kl: float
    fraction: float
    tries: int


def trpo_step(
    params: Sequence[Tensor],
    surrogate: Callable[[], Tensor],
    kl: Callable[[], Tensor],
    max_kl: float = 0.01,
    cg_iters: int = 10,
    damping: float = 1e-5,
    backtrack: float = 0.5,
    max_tries: int = 15,
) -> TRPOResult:
    """Maximise ``surrogate()`` over ``params`` (changed in place) subject to
    ``kl() <= max_kl``; both closures read the current ``params``."""
    params = list(params)
    old = parameters_to_vector(params).detach().clone()
    value = surrogate()
    grads = torch.autograd.grad(value, params)
    g = torch.cat([x.reshape(-1) for x in grads]).detach()
    before = float(value.detach())
    fvp = hessian_vector_product(kl, params, damping)
    direction = conjugate_gradient(fvp, g, cg_iters)
    curvature = float(direction @ fvp(direction))
    if not curvature > 0.0:  # a flat or degenerate KL: no trust region to take
        return TRPOResult(before, before, 0.0, 0.0, 0)
    full = direction * (2.0 * max_kl / curvature) ** 0.5
    fraction = 1.0
    for tries in range(1, max_tries + 1):  # with autograd on: an inner adaptation needs it
        vector_to_parameters(old + fraction * full, params)
        after, divergence = float(surrogate().detach()), float(kl().detach())
        if after > before and divergence <= max_kl:
            return TRPOResult(before, after, divergence, fraction, tries)
        fraction *= backtrack
    vector_to_parameters(old, params)
    return TRPOResult(before, before, 0.0, 0.0, max_tries)
