"""PackNet (Mallya & Lazebnik 2018): one network, disjoint weight subsets per task.

Each prunable weight entry has an owner: the task whose training fixed it, or
:data:`FREE`. Training task ``t`` changes free entries only. Some steps before the
task ends, its free entries are pruned by magnitude (the largest ``keep`` share stays
and becomes task ``t``'s; the rest are zeroed and left free for later tasks), then the
kept ones are retrained. Acting on task ``j`` uses only the entries of tasks ``<= j``
(and, for the task being trained, the free ones). Biases and normalisation
parameters train on the first task only, as in Continual World; per-task heads and
embedding rows belong to their task already: only the training task's row changes.

The mask arithmetic is pure functions (:func:`prune_free`, :func:`view_mask`,
:func:`keep_share`), tested by hand; :class:`PackNet` applies them to a module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from mtrl.errors import ConfigError

FREE = torch.iinfo(torch.int32).max  # owner code of an entry no task has claimed


def keep_share(task_index: int, num_tasks: int) -> float:
    """The share of the free entries task ``task_index`` keeps, so that every task of a
    ``num_tasks`` sequence gets an equal share of the prunable weights (the last task
    keeps everything that is left)."""
    if not 0 <= task_index < num_tasks:
        raise ValueError(f"task_index {task_index} outside a sequence of {num_tasks} tasks")
    return 1.0 / (num_tasks - task_index)


def prune_free(weight: Tensor, owner: Tensor, keep: float, task: int) -> Tensor:
    """New owners after task ``task`` keeps the ``keep`` share (rounded) of the free
    entries of ``weight`` with the largest magnitude; the other free entries stay free."""
    if weight.shape != owner.shape:
        raise ValueError(f"weight {tuple(weight.shape)} and owner {tuple(owner.shape)} differ")
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep must be in [0, 1], got {keep}")
    free = owner == FREE
    n_keep = round(keep * int(free.sum()))
    out = owner.clone()
    if n_keep == 0:
        return out
    magnitude = torch.where(free, weight.detach().abs(), torch.full_like(weight, -1.0))
    idx = torch.topk(magnitude.reshape(-1), n_keep).indices
    out.view(-1)[idx] = task
    return out


def view_mask(owner: Tensor, task: int, training: int | None) -> Tensor:
    """Entries that act for ``task``: those of tasks ``<= task``, plus the free ones
    when ``task`` is the one in training."""
    mask = owner <= task
    if training is not None and task == training:
        mask = mask | (owner == FREE)
    return mask


def _role(name: str, param: Tensor) -> str:
    if name.startswith(("encoder.", "popart.")) or ".heads." in f".{name}":
        return "task"  # one slice per task already (row t: task t)
    return "prunable" if param.dim() >= 2 else "first_task"


class PackNet:
    """PackNet's owners for one module (the actor, and the critic when asked)."""

    def __init__(self, module: nn.Module, arch: str) -> None:
        if arch not in ("shared", "multihead"):
            raise ConfigError(
                f"continual.method = 'packnet' prunes the weights of arch 'shared' or "
                f"'multihead' networks, not {arch!r}; set sac.actor.arch = 'multihead'"
            )
        self.module = module
        self.params: dict[str, Tensor] = {}
        self.owners: dict[str, Tensor] = {}
        self.first_done = False  # biases and norms are frozen once the first task ends
        self.per_task: set[str] = set()  # heads and embeddings: row t is task t's
        for name, p in module.named_parameters():
            role = _role(name, p)
            if role == "prunable":
                self.params[name] = p
                self.owners[name] = torch.full(p.shape, FREE, dtype=torch.int32)
            elif role == "first_task":
                self.params[name] = p
            else:
                self.params[name] = p
                self.per_task.add(name)
        self.training: int | None = None  # the task whose free entries are training
        self.retraining = False  # after this task's pruning, before it ends
        self._held: dict[str, tuple[Tensor, Tensor]] = {}  # entries one step may not move

    def start_task(self, task: int) -> None:
        self.training, self.retraining = task, False

    def _trainable(self, name: str) -> Tensor | None:
        """Boolean mask of the entries of ``name`` the current step may change (None: all)."""
        if name in self.owners:
            owner = self.owners[name].to(self.params[name].device)
            claimant = self.training if self.retraining and self.training is not None else FREE
            return torch.eq(owner, claimant)
        p = self.params[name]
        if name in self.per_task:  # only the training task's row may change
            rows = torch.zeros(p.shape[0], dtype=torch.bool, device=p.device)
            if self.training is not None:
                rows[self.training] = True
            return rows.reshape(-1, *([1] * (p.dim() - 1))).expand_as(p)
        return torch.zeros_like(p, dtype=torch.bool) if self.first_done else None

    @torch.no_grad()
    def prune(self, task: int, keep: float) -> None:
        """Task ``task`` keeps the ``keep`` share of the free entries; the rest are zeroed
        and stay free; the kept ones are retrained until the task ends."""
        for name, owner in self.owners.items():
            p = self.params[name]
            new = prune_free(p.cpu(), owner, keep, task)
            released = (new == FREE).to(p.device)
            p.masked_fill_(released, 0.0)
            self.owners[name] = new
        self.retraining = True

    def end_task(self) -> None:
        """Freeze biases and norms after the first task; later tasks only use free weights."""
        self.first_done = True
        self.training, self.retraining = None, False

    def mask_gradients(self) -> None:
        """Zero the gradients of entries the current step may not change, and remember
        their values for :meth:`restore`."""
        self._held = {}
        for name, p in self.params.items():
            mask = self._trainable(name)
            if mask is None:
                continue
            if p.grad is not None:
                p.grad.mul_(mask.to(p.grad.dtype))
            self._held[name] = (mask, p.detach().clone())

    @torch.no_grad()
    def restore(self) -> None:
        """Put back entries the optimizer moved although their gradient was zero (Adam's
        momentum from before a pruning, weight decay)."""
        for name, (mask, before) in self._held.items():
            p = self.params[name]
            p.copy_(torch.where(mask, p, before))
        self._held = {}

    @contextmanager
    def view(self, task: int) -> Iterator[None]:
        """Within the block, the module's prunable weights are those acting for ``task``."""
        if task == self.training:  # no entry belongs to a later task yet: all act
            yield
            return
        saved = {name: self.params[name].detach().clone() for name in self.owners}
        try:
            with torch.no_grad():
                for name, owner in self.owners.items():
                    mask = view_mask(owner, task, self.training).to(saved[name].device)
                    self.params[name].mul_(mask.to(saved[name].dtype))
            yield
        finally:
            with torch.no_grad():
                for name, value in saved.items():
                    self.params[name].copy_(value)

    def state_dict(self) -> dict[str, Any]:
        return {
            "owners": self.owners,
            "first_done": self.first_done,
            "training": self.training,
            "retraining": self.retraining,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.owners = dict(state["owners"])
        self.first_done = bool(state["first_done"])
        self.training = state["training"]
        self.retraining = bool(state["retraining"])
