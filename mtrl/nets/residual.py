"""Residual, layer-normalised bodies for critics that tolerate many updates per env
step: BRO's (Nauman et al. 2024, "Bigger, Regularized, Optimistic"):

    Linear -> LayerNorm -> act,  then  blocks x  [x + LayerNorm(Linear(act(LayerNorm(Linear(x)))))],
    then a linear output.

Normalising every layer keeps the features bounded as the critic is fitted hard,
and the skips let a wide network stay trainable deep; SimBa (Lee et al. 2024) is the
same idea with pre-norm blocks.
"""

from __future__ import annotations

from torch import Tensor, nn

from mtrl.nets.mlp import _ACTIVATIONS, Activation


class ResidualBlock(nn.Module):
    """``x + LayerNorm(Linear(act(LayerNorm(Linear(x)))))`` at width ``width``."""

    def __init__(self, width: int, activation: Activation) -> None:
        super().__init__()
        self.inner = nn.Sequential(
            nn.Linear(width, width),
            nn.LayerNorm(width),
            _ACTIVATIONS[activation](),
            nn.Linear(width, width),
            nn.LayerNorm(width),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.inner(x)


def residual_mlp(
    in_dim: int, width: int, blocks: int, out_dim: int, activation: Activation = "relu"
) -> nn.Sequential:
    """BRO's body: an input layer to ``width``, ``blocks`` residual blocks, an output."""
    if min(in_dim, width, out_dim) < 1 or blocks < 0:
        raise ValueError(f"sizes must be >= 1 and blocks >= 0: {in_dim}, {width}, {out_dim}")
    return nn.Sequential(
        nn.Linear(in_dim, width),
        nn.LayerNorm(width),
        _ACTIVATIONS[activation](),
        *[ResidualBlock(width, activation) for _ in range(blocks)],
        nn.Linear(width, out_dim),
    )
