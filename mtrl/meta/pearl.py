"""PEARL's parts (Rakelly et al. 2019): a probabilistic context encoder whose
posterior over the task latent ``z`` is the product of one Gaussian factor per
transition, and SAC networks conditioned on ``z``. Every tensor carries a leading
task dimension, so a batch of tasks is one call (no loop over tasks).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal

from mtrl.nets import mlp

MIN_VAR = 1e-7  # a factor's variance floor (PEARL's), so 1/var stays finite


def product_of_gaussians(
    mu: Tensor, var: Tensor, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The normalised product of Gaussians ``N(mu_i, var_i)`` over dim -2:
    ``var = 1 / sum(1 / var_i)``, ``mu = var * sum(mu_i / var_i)`` (``[..., N, d]``
    -> ``[..., d]``); factors where ``mask`` ``[..., N]`` is 0 are left out."""
    precision = 1.0 / var.clamp_min(MIN_VAR)
    if mask is not None:
        precision = precision * mask.unsqueeze(-1)
    post_var = 1.0 / precision.sum(-2)
    return post_var * (mu * precision).sum(-2), post_var


def kl_to_standard_normal(mu: Tensor, var: Tensor) -> Tensor:
    """``KL(N(mu, var) || N(0, I))`` summed over the last dim."""
    return 0.5 * (var + mu * mu - 1.0 - var.log()).sum(-1)


class ContextEncoder(nn.Module):
    """Each transition ``(o, a, r[, o'])`` to a Gaussian factor over ``z``; the
    posterior of a task's context is their product."""

    def __init__(self, in_dim: int, latent: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.latent = latent
        self.net = mlp(in_dim, hidden, 2 * latent, "relu")

    def posterior(self, context: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean and variance ``[T, latent]`` of ``z`` given contexts ``[T, N, in]``
        (rows where ``mask`` ``[T, N]`` is 0 left out)."""
        out = self.net(context)
        mu, raw = out[..., : self.latent], out[..., self.latent :]
        return product_of_gaussians(mu, F.softplus(raw), mask)


def sample_z(mu: Tensor, var: Tensor) -> Tensor:
    """A reparameterised draw of ``z``."""
    return mu + var.sqrt() * torch.randn_like(mu)


class LatentActor(nn.Module):
    """A tanh-Gaussian policy over ``[obs, z]``, scaled to the action bounds."""

    scale: Tensor

    def __init__(self, obs_dim: int, act_dim: int, latent: int, hidden: Sequence[int],
                 scale: Tensor) -> None:  # fmt: skip
        super().__init__()
        self.net = mlp(obs_dim + latent, hidden, 2 * act_dim, "relu")
        self.act_dim = act_dim
        self.register_buffer("scale", scale.float())

    def forward(self, obs: Tensor, z: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor]:
        """Actions and their log-probabilities for ``obs`` ``[..., obs]`` and ``z``."""
        out = self.net(torch.cat([obs, z], -1))
        mean, log_std = out[..., : self.act_dim], out[..., self.act_dim :].clamp(-20.0, 2.0)
        dist = Normal(mean, log_std.exp())
        u = mean if deterministic else dist.rsample()
        a = torch.tanh(u)
        logp = (dist.log_prob(u) - torch.log(1.0 - a * a + 1e-6)).sum(-1)
        return a * self.scale, logp


class LatentCritics(nn.Module):
    """Twin Q-networks over ``[obs, action, z]``."""

    def __init__(self, obs_dim: int, act_dim: int, latent: int, hidden: Sequence[int]) -> None:
        super().__init__()
        dims = obs_dim + act_dim + latent
        self.q = nn.ModuleList([mlp(dims, hidden, 1, "relu") for _ in range(2)])

    def forward(self, obs: Tensor, act: Tensor, z: Tensor) -> Tensor:
        """``[2, ...]`` values."""
        x = torch.cat([obs, act, z], -1)
        return torch.stack([q(x).squeeze(-1) for q in self.q])


def target_entropy(act_dim: int) -> float:
    """SAC's default target entropy, ``-|A|``."""
    return -float(act_dim)


class TaskReplay:
    """A ring buffer of transitions per task, ``[tasks, capacity, width]``: rows are
    added per task and batches drawn for many tasks in one gather."""

    def __init__(self, tasks: int, capacity: int, width: int) -> None:
        self.data = torch.zeros(tasks, capacity, width)
        self.size = torch.zeros(tasks, dtype=torch.long)
        self.next = torch.zeros(tasks, dtype=torch.long)

    def add(self, task: int, rows: Tensor) -> None:
        capacity = self.data.shape[1]
        rows = rows[-capacity:]
        idx = (self.next[task] + torch.arange(len(rows))) % capacity
        self.data[task, idx] = rows
        self.next[task] = (self.next[task] + len(rows)) % capacity
        self.size[task] = min(capacity, int(self.size[task]) + len(rows))

    def clear(self, task: int) -> None:
        self.size[task] = 0
        self.next[task] = 0

    def sample(self, tasks: Tensor, batch: int) -> Tensor:
        """``[len(tasks), batch, width]`` rows drawn uniformly (with replacement) from
        each task's stored rows (torch's global RNG, so checkpoints carry it)."""
        sizes = self.size[tasks]
        if (sizes == 0).any():
            raise ValueError("a task with no stored transitions")
        idx = (torch.rand(len(tasks), batch) * sizes[:, None]).long()
        return self.data[tasks[:, None], idx]

    def state_dict(self) -> dict[str, Tensor]:
        """The slots in use (up to the fullest task's), the sizes and write positions."""
        used = int(self.size.max()) if len(self.size) else 0
        return {"data": self.data[:, :used].clone(), "size": self.size, "next": self.next}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.data.zero_()
        self.data[:, : state["data"].shape[1]] = state["data"]
        self.size, self.next = state["size"].clone(), state["next"].clone()
