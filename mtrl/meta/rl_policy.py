"""The Gaussian MLP policy of MAML-RL, evaluated with per-task (stacked) parameters."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Normal

from mtrl.meta.batched import linear_stack, stacked_forward
from mtrl.nets import mlp
from mtrl.nets.mlp import Activation


class GaussianMLPPolicy(nn.Module):
    """``N(mlp(obs), exp(log_std))`` with a state-independent ``log_std`` (MAML-RL's policy)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (64, 64),
        activation: Activation = "tanh",
        init_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.mean = mlp(obs_dim, hidden, act_dim, activation)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))
        layers = linear_stack(self.mean)
        if layers is None:  # mlp() always builds a stackable Sequential
            raise TypeError("policy mean network must be a Sequential MLP")
        self._layers = layers

    def distribution(self, params: Mapping[str, Tensor], obs: Tensor) -> Normal:
        """Action distribution for ``obs`` ``[tasks, n, obs_dim]``.

        ``params`` are ``named_parameters`` names -> tensors, shared (as in the module) or
        stacked per task (a leading ``tasks`` dim), as produced by the inner loop.
        """
        inner = {n[len("mean.") :]: p for n, p in params.items() if n.startswith("mean.")}
        mean = stacked_forward(self._layers, inner, obs)
        log_std = params["log_std"]
        if log_std.dim() == 2:  # per task
            log_std = log_std.unsqueeze(1)
        return Normal(mean, log_std.exp().expand_as(mean))

    def forward(self, obs: Tensor) -> Tensor:
        """The mean action (deterministic use)."""
        return self.mean(obs)
