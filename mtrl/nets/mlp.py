"""The plain multilayer perceptron every model in mtrl starts from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import nn

Activation = Literal["relu", "tanh", "elu", "silu", "leaky_relu"]
_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    activation: Activation = "relu",
    layer_norm: bool = False,
) -> nn.Sequential:
    """``Linear -> act -> ... -> Linear``; parameter names are ``"<index>.weight"``.

    ``layer_norm``: the first hidden layer is ``Linear -> LayerNorm -> tanh`` (the
    networks of Continual World and of Meta-World's SAC baselines)."""
    if in_dim < 1 or out_dim < 1 or any(h < 1 for h in hidden):
        raise ValueError(f"layer sizes must be >= 1, got {in_dim}, {list(hidden)}, {out_dim}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(_ACTIVATIONS)}")
    sizes = [in_dim, *hidden, out_dim]
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            if layer_norm and i == 0:
                layers += [nn.LayerNorm(sizes[1]), nn.Tanh()]
            else:
                layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)
