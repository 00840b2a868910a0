"""Continual-learning penalties and importances (pure functions over parameter lists).

* :func:`anchored_penalty`: ``sum_j w_j (theta_j - theta*_j)^2`` — L2 (``w = 1``),
  EWC (``w`` = diagonal Fisher), MAS (``w`` = output-sensitivity importance).
* :func:`squared_importance` / :func:`absolute_importance`: EWC's empirical diagonal
  Fisher (mean squared per-sample gradient of the log-likelihood) and MAS's mean
  absolute per-sample gradient of the squared output norm.
* :func:`gaussian_kl`: KL(old || new) of diagonal Gaussians, for distilling a stored
  policy (behaviour-cloning rehearsal).
* :func:`agem_project`: A-GEM's projection of a gradient that would increase the
  loss on episodic memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor


def _check_same(a: Sequence[Tensor], b: Sequence[Tensor], what: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{what}: {len(a)} parameters but {len(b)} references")
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x.shape != y.shape:
            raise ValueError(
                f"{what}: parameter {i} is {tuple(x.shape)}, reference {tuple(y.shape)}"
            )


def anchored_penalty(
    params: Sequence[Tensor], anchors: Sequence[Tensor], weights: Sequence[Tensor] | None = None
) -> Tensor:
    """``sum_j w_j (params_j - anchors_j)^2`` over all entries (``w = 1`` when None)."""
    _check_same(params, anchors, "anchored_penalty")
    if weights is not None:
        _check_same(params, weights, "anchored_penalty weights")
    total = params[0].new_zeros(())
    for i, (p, a) in enumerate(zip(params, anchors, strict=True)):
        sq = (p - a.detach()) ** 2
        total = total + (sq if weights is None else weights[i].detach() * sq).sum()
    return total


def _accumulate(
    loss_of_sample: Callable[[int], Tensor],
    params: Sequence[Tensor],
    samples: int,
    transform: Callable[[Tensor], Tensor],
) -> list[Tensor]:
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    out = [torch.zeros_like(p) for p in params]
    for i in range(samples):
        grads = torch.autograd.grad(loss_of_sample(i), list(params), allow_unused=True)
        for acc, g in zip(out, grads, strict=True):
            if g is not None:
                acc += transform(g)
    return [acc / samples for acc in out]


def squared_importance(
    log_likelihood: Callable[[int], Tensor], params: Sequence[Tensor], samples: int
) -> list[Tensor]:
    """EWC's diagonal Fisher: mean over samples of the squared per-sample gradient of
    ``log_likelihood(i)`` (a scalar for sample ``i``)."""
    return _accumulate(log_likelihood, params, samples, lambda g: g * g)


def absolute_importance(
    output_norm: Callable[[int], Tensor], params: Sequence[Tensor], samples: int
) -> list[Tensor]:
    """MAS's importance: mean over samples of the absolute per-sample gradient of
    ``output_norm(i)`` (the squared L2 norm of the network's output on sample ``i``)."""
    return _accumulate(output_norm, params, samples, torch.abs)


def gaussian_kl(mu_old: Tensor, log_std_old: Tensor, mu_new: Tensor, log_std_new: Tensor) -> Tensor:
    """Per-row KL(N_old || N_new) of diagonal Gaussians, summed over the last axis."""
    if not (mu_old.shape == log_std_old.shape == mu_new.shape == log_std_new.shape):
        raise ValueError(
            "gaussian_kl needs equal shapes, got "
            f"{[tuple(t.shape) for t in (mu_old, log_std_old, mu_new, log_std_new)]}"
        )
    var_old = torch.exp(2.0 * log_std_old)
    var_new = torch.exp(2.0 * log_std_new)
    kl = log_std_new - log_std_old + (var_old + (mu_old - mu_new) ** 2) / (2.0 * var_new) - 0.5
    return kl.sum(-1)


def gaussian_log_prob(x: Tensor, mu: Tensor, log_std: Tensor) -> Tensor:
    """Log-density of diagonal Gaussians, summed over the last axis."""
    z = (x - mu) * torch.exp(-log_std)
    return (-0.5 * z * z - log_std - 0.5 * math.log(2.0 * math.pi)).sum(-1)


def agem_project(grad: Tensor, reference: Tensor) -> Tensor:
    """A-GEM (Chaudhry et al. 2019): ``grad`` unchanged when it does not oppose the
    memory's gradient ``reference`` (``g . r >= 0``), else ``g - (g . r / r . r) r``, its
    projection onto the half-space where the memory loss does not increase."""
    if grad.shape != reference.shape or grad.dim() != 1:
        raise ValueError(
            f"agem_project needs two flat vectors of one size, got {tuple(grad.shape)} "
            f"and {tuple(reference.shape)}"
        )
    dot = torch.dot(grad, reference)
    norm = torch.dot(reference, reference)
    if dot >= 0 or norm <= 0:
        return grad
    return grad - (dot / norm) * reference
