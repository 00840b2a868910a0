"""A categorical critic trained by classification: HL-Gauss targets (Imani & White 2018;
Farebrother et al. 2024, "Stop Regressing"; BRC's critic).

Each Q-network outputs logits over ``bins`` equal-width bins of ``[v_min, v_max]``; its
value is the softmax's expectation over the bin centres. A scalar TD target ``y``
becomes the probability a Gaussian ``N(y, sigma^2)`` puts in each bin (renormalised to
the support, ``y`` clipped into it), and the critic's loss is the cross-entropy against
those probabilities: bounded gradients whatever the scale of the returns, which is what
lets one critic fit tasks whose returns differ by orders of magnitude.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mtrl.config import bounded, check_fields
from mtrl.errors import ConfigError


@dataclass(frozen=True)
class HLGaussConfig:
    """``[sac.hl_gauss]``: the critics classify returns into ``bins`` bins of
    ``[v_min, v_max]`` with Gaussian-smoothed targets of width ``sigma`` bin widths.
    The range must hold the discounted returns: Meta-World's V2 rewards are in [0, 10]
    per step, so [0, 1000] at gamma 0.99 (the defaults)."""

    bins: int = bounded(101, ge=2)
    v_min: float = 0.0
    v_max: float = 1000.0
    sigma: float = bounded(0.75, gt=0.0)  # in bin widths (the paper's 0.75)

    def __post_init__(self) -> None:
        check_fields(self, "sac.hl_gauss")
        if not self.v_max > self.v_min:
            raise ConfigError(
                f"sac.hl_gauss: v_min = {self.v_min} must be below v_max = {self.v_max} "
                "(the range of the discounted returns the critics classify)"
            )

    @property
    def width(self) -> float:
        return (self.v_max - self.v_min) / self.bins

    def edges(self) -> Tensor:
        """The ``bins + 1`` bin edges."""
        return torch.linspace(self.v_min, self.v_max, self.bins + 1)

    def centres(self) -> Tensor:
        edges = self.edges()
        return (edges[:-1] + edges[1:]) / 2


def hl_gauss_probs(targets: Tensor, edges: Tensor, sigma: float) -> Tensor:
    """``[..., bins]`` probabilities that ``N(target, sigma^2)``, cut to the support and
    renormalised, puts in each bin (targets clipped into the support first)."""
    y = targets.clamp(float(edges[0]), float(edges[-1])).unsqueeze(-1)
    cdf = torch.special.erf((edges - y) / (sigma * math.sqrt(2.0)))  # 2 * Phi - 1
    mass = cdf[..., 1:] - cdf[..., :-1]
    return mass / (cdf[..., -1:] - cdf[..., :1]).clamp_min(1e-12)


def expected_value(logits: Tensor, centres: Tensor) -> Tensor:
    """The value of ``[..., bins]`` logits: their softmax's mean over the bin centres."""
    return (torch.softmax(logits, dim=-1) * centres).sum(-1)


def classification_loss(logits: Tensor, probs: Tensor) -> Tensor:
    """Per-row cross-entropy of ``logits`` against target ``probs``."""
    return -(probs * torch.log_softmax(logits, dim=-1)).sum(-1)
