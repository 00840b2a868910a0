"""Task-conditioned networks: ``net(x, task_ids) -> y`` for every sharing scheme.

* ``shared``: one MLP on ``[x, encode(task)]`` (the baseline of Meta-World's MT-SAC);
  ``encoder = "none"`` gives the task-blind network used to show negative transfer.
* ``film``: one MLP whose hidden layers are scaled and shifted per task (FiLM).
* ``multihead``: hard sharing: a shared trunk and a separate output layer per task.
* ``soft``: a separate MLP per task, pulled together by an L2 penalty towards the
  mean over tasks (:meth:`MultiTaskNet.regularization`, weight ``soft_l2``).
* ``moe``: a mixture of expert MLPs weighted by attention from the task embedding,
  then an output MLP on ``[mixture, embedding]`` (CARE, Sodhani et al. 2021, with the
  task embedding learned instead of from metadata).
* ``softmod``: soft modularization (Yang et al. 2020, :mod:`mtrl.nets.softmod`):
  ``hidden[0]`` is the embedding width, ``hidden[1:]`` the module layers' widths,
  ``num_experts`` modules per layer, routed per sample from state and task.
* ``residual``: one network on ``[x, encode(task)]`` of ``residual_blocks``
  layer-normalised residual blocks of width ``hidden[0]`` (BRO's critic,
  :mod:`mtrl.nets.residual`), for critics updated many times per env step.
"""

from __future__ import annotations

import itertools
import typing
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from mtrl.config import bounded, check_fields
from mtrl.errors import ConfigError
from mtrl.nets.layers import TaskLinear, check_task_ids
from mtrl.nets.mlp import _ACTIVATIONS, Activation, mlp
from mtrl.nets.residual import residual_mlp
from mtrl.nets.softmod import SoftModularNet

Architecture = Literal["shared", "film", "multihead", "soft", "moe", "softmod", "residual"]
Encoder = Literal["onehot", "embedding", "none"]


@dataclass(frozen=True)
class NetConfig:
    """Architecture of a task-conditioned network (actor or critic)."""

    arch: Architecture = "shared"
    hidden: list[int] = field(default_factory=lambda: [400, 400, 400])
    activation: Activation = "relu"
    encoder: Encoder = "onehot"
    embedding_dim: int = bounded(32, ge=1)  # learned embeddings (embedding / moe)
    num_experts: int = bounded(4, ge=1)  # moe experts; softmod modules per layer
    soft_l2: float = bounded(1e-3, ge=0.0)  # soft sharing penalty weight
    layer_norm: bool = False  # first hidden layer Linear -> LayerNorm -> tanh (shared, multihead)
    residual_blocks: int = bounded(2, ge=0)  # arch "residual": blocks of width hidden[0]

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden = {self.hidden!r}: give at least one layer of >= 1 unit")
        if self.arch == "softmod" and len(self.hidden) < 3:
            raise ConfigError(
                f"arch = 'softmod' reads hidden as [embedding, module layer widths...] and "
                f"needs >= 2 module layers: give >= 3 entries, got {self.hidden}"
            )
        if self.arch == "residual" and len(self.hidden) != 1:
            raise ConfigError(
                f"arch = 'residual' has one width, hidden[0], and residual_blocks blocks "
                f"of it: give hidden = [{self.hidden[0]}] (got {self.hidden})"
            )
        if self.layer_norm and self.arch not in ("shared", "multihead"):
            raise ConfigError(
                f"layer_norm = true is built for arch 'shared' and 'multihead', not {self.arch!r}"
            )
        if self.layer_norm and self.arch == "multihead" and len(self.hidden) < 2:
            raise ConfigError("layer_norm with arch 'multihead' needs >= 2 hidden layers")
        if self.arch in ("film", "soft", "softmod") and self.encoder != "onehot":
            raise ConfigError(
                f"arch = {self.arch!r} conditions on the task by itself; "
                "leave encoder = 'onehot' (it is not used)"
            )


class TaskEncoder(nn.Module):
    """Task id -> vector: one-hot, a learned embedding, or nothing (task-blind)."""

    def __init__(self, kind: Encoder, num_tasks: int, dim: int) -> None:
        super().__init__()
        self.kind = kind
        self.num_tasks = num_tasks
        self.embedding = nn.Embedding(num_tasks, dim) if kind == "embedding" else None
        self.dim = {"onehot": num_tasks, "embedding": dim, "none": 0}[kind]

    def forward(self, task_ids: Tensor) -> Tensor:
        if self.embedding is not None:
            return self.embedding(task_ids)
        if self.kind == "onehot":
            return nn.functional.one_hot(task_ids, self.num_tasks).float()
        return torch.zeros(task_ids.shape[0], 0, device=task_ids.device)


class MultiTaskNet(nn.Module):
    """``forward(x [batch, in], task_ids [batch]) -> [batch, out]``."""

    def __init__(self, config: NetConfig, in_dim: int, out_dim: int, num_tasks: int) -> None:
        super().__init__()
        if num_tasks < 1 or in_dim < 1 or out_dim < 1:
            raise ValueError(f"sizes must be >= 1: in {in_dim}, out {out_dim}, tasks {num_tasks}")
        self.config = config
        self.in_dim, self.out_dim, self.num_tasks = in_dim, out_dim, num_tasks
        self.act = _ACTIVATIONS[config.activation]()
        h = config.hidden
        arch = config.arch
        enc_kind: Encoder = "embedding" if arch == "moe" else config.encoder
        if arch in ("film", "soft", "softmod"):
            enc_kind = "none"
        self.encoder = TaskEncoder(enc_kind, num_tasks, config.embedding_dim)
        e = self.encoder.dim
        if arch == "shared":
            self.body = mlp(in_dim + e, h, out_dim, config.activation, config.layer_norm)
        elif arch == "residual":
            blocks, act = config.residual_blocks, config.activation
            self.body = residual_mlp(in_dim + e, h[0], blocks, out_dim, act)
        elif arch == "film":
            self.layers = nn.ModuleList(
                nn.Linear(a, b) for a, b in zip([in_dim, *h[:-1]], h, strict=True)
            )
            self.film = nn.Parameter(torch.zeros(num_tasks, 2, sum(h)))  # gamma-1, beta
            self.out = nn.Linear(h[-1], out_dim)
        elif arch == "multihead":
            self.trunk = mlp(in_dim + e, h[:-1], h[-1], config.activation, config.layer_norm)
            self.heads = TaskLinear(num_tasks, h[-1], out_dim)
        elif arch == "soft":
            sizes = [in_dim, *h, out_dim]
            self.task_layers = nn.ModuleList(
                TaskLinear(num_tasks, a, b) for a, b in itertools.pairwise(sizes)
            )
        elif arch == "softmod":
            self.softmod = SoftModularNet(
                in_dim, out_dim, num_tasks, h[0], list(h[1:]), config.num_experts, self.act
            )
        else:  # moe
            self.experts = nn.ModuleList(
                TaskLinear(config.num_experts, a, b)
                for a, b in zip([in_dim, *h[:-1]], h, strict=True)
            )
            self.attention = nn.Linear(e, config.num_experts)
            self.head = mlp(h[-1] + e, h[-1:], out_dim, config.activation)

    def forward(self, x: Tensor, task_ids: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must be [batch, {self.in_dim}], got {tuple(x.shape)}")
        check_task_ids(task_ids, x.shape[0], self.num_tasks)
        arch = self.config.arch
        if arch in ("shared", "residual"):
            return self.body(torch.cat([x, self.encoder(task_ids)], dim=-1))
        if arch == "film":
            return self._film(x, task_ids)
        if arch == "multihead":
            z = self.act(self.trunk(torch.cat([x, self.encoder(task_ids)], dim=-1)))
            return self.heads(z, task_ids)
        if arch == "softmod":
            return self.softmod(x, task_ids)
        if arch == "soft":
            h = x
            for i, layer in enumerate(self._task_layers(self.task_layers)):
                h = layer(h, task_ids)
                if i < len(self.task_layers) - 1:
                    h = self.act(h)
            return h
        return self._moe(x, task_ids)

    def _film(self, x: Tensor, task_ids: Tensor) -> Tensor:
        film = self.film.index_select(0, task_ids)  # [batch, 2, sum(hidden)]
        h, start = x, 0
        for layer in self.layers:
            h = layer(h)
            width = h.shape[-1]
            gamma = 1.0 + film[:, 0, start : start + width]
            beta = film[:, 1, start : start + width]
            h = self.act(h * gamma + beta)
            start += width
        return self.out(h)

    def _moe(self, x: Tensor, task_ids: Tensor) -> Tensor:
        emb = self.encoder(task_ids)
        weights = torch.softmax(self.attention(emb), dim=-1)  # [batch, experts]
        h = x.unsqueeze(0).expand(self.config.num_experts, -1, -1)  # [K, batch, in]
        for layer in self._task_layers(self.experts):
            h = self.act(layer.forward_stacked(h))
        mixed = torch.einsum("kbh,bk->bh", h, weights)
        return self.head(torch.cat([mixed, emb], dim=-1))

    @staticmethod
    def _task_layers(layers: nn.ModuleList) -> list[TaskLinear]:
        return [typing.cast(TaskLinear, m) for m in layers]

    def last_shared_weight(self) -> list[Tensor]:
        """The weight of the last layer all tasks share (where GradNorm compares task
        gradient norms); empty for ``soft`` sharing, which shares no layer."""
        arch = self.config.arch
        if arch == "soft":
            return []
        if arch == "multihead":  # the trunk's last layer: the heads are per task
            linears = [m for m in self.trunk.modules() if isinstance(m, nn.Linear)]
            return [linears[-1].weight]
        return [self.output_layer().weight]

    def output_layer(self) -> nn.Linear | TaskLinear:
        """The layer that gives the net's outputs (nothing comes after it)."""
        arch = self.config.arch
        if arch == "multihead":
            return self.heads
        if arch == "soft":
            return self._task_layers(self.task_layers)[-1]
        owner: nn.Module = {
            "shared": lambda: self.body,
            "residual": lambda: self.body,
            "film": lambda: self.out,
            "moe": lambda: self.head,
            "softmod": lambda: self.softmod.out,
        }[arch]()
        return [m for m in owner.modules() if isinstance(m, nn.Linear)][-1]

    def regularization(self) -> Tensor:
        """Soft sharing's ``soft_l2 * sum ||W_t - mean_t W||^2``; 0 for other schemes."""
        if self.config.arch != "soft":
            return torch.zeros((), device=next(self.parameters()).device)
        total = torch.zeros((), device=next(self.parameters()).device)
        for layer in self._task_layers(self.task_layers):
            for p in (layer.weight, layer.bias):
                total = total + ((p - p.mean(dim=0, keepdim=True)) ** 2).sum()
        return self.config.soft_l2 * total
