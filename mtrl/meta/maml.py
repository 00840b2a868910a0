"""MetaLearner: MAML (second order), first-order MAML, ANIL and Meta-SGD, vmapped over tasks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import vmap

from mtrl.config import bounded
from mtrl.errors import MtrlError
from mtrl.meta.functional import LossFn, Params, adapt, query_loss

Algorithm = Literal["maml", "fomaml", "anil", "metasgd"]


class UnsupportedModuleError(MtrlError, TypeError):
    """The model has a layer the functional fast path cannot adapt per task."""


@dataclass(frozen=True)
class MetaLearnerConfig:
    algorithm: Algorithm = "maml"
    inner_lr: float = bounded(0.01, gt=0.0)
    inner_steps: int = bounded(1, ge=1, le=100)
    head: str = ""  # ANIL: parameter-name prefix of the head (default: the last layer)


def _check_functional(model: nn.Module) -> None:
    for name, mod in model.named_modules():
        norm = isinstance(mod, nn.modules.batchnorm._BatchNorm)
        if norm and mod.training and mod.track_running_stats:
            raise UnsupportedModuleError(
                f"{name or type(model).__name__} ({type(mod).__name__}) updates running "
                "statistics in training mode, which cannot be batched across tasks; use "
                "track_running_stats=False, LayerNorm/GroupNorm, or call .eval() on it"
            )


class MetaLearner(nn.Module):
    """Wraps a model; :meth:`meta_loss` gives the mean query loss of a task batch.

    Task batches are stacked tensors ``[tasks, shots, ...]``; one ``vmap`` runs the inner
    loop of all tasks. ``loss.backward()`` gives the meta-gradient (second order for
    ``maml`` and ``metasgd``, first order for ``fomaml``), including Meta-SGD's learning
    rates (``self.lrs``).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, config: MetaLearnerConfig) -> None:
        super().__init__()
        _check_functional(model)
        self.model = model
        self.loss_fn = loss_fn
        self.config = config
        names = [n for n, _ in model.named_parameters()]
        if config.algorithm == "anil":
            prefix = config.head or names[-1].rsplit(".", 1)[0]
            adapted = [n for n in names if n.startswith(prefix)]
            if not adapted:
                raise MtrlError(f"head prefix {prefix!r} matches no parameter; parameters: {names}")
        else:
            adapted = names
        self.adapted = adapted
        params = dict(model.named_parameters())
        self.lrs = nn.ParameterDict(
            {
                n.replace(".", "__"): nn.Parameter(torch.full_like(params[n], config.inner_lr))
                for n in adapted
            }
            if config.algorithm == "metasgd"
            else {}
        )

    def _lrs(self) -> dict[str, Tensor]:
        if self.config.algorithm == "metasgd":
            return {n: self.lrs[n.replace(".", "__")] for n in self.adapted}
        params = dict(self.model.named_parameters())
        return {
            n: torch.tensor(self.config.inner_lr, dtype=params[n].dtype, device=params[n].device)
            for n in self.adapted
        }

    def _state(self) -> tuple[Params, Params]:
        return dict(self.model.named_parameters()), dict(self.model.named_buffers())

    def meta_loss(self, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor) -> Tensor:
        """Mean query loss over tasks after each adapts on its support set."""
        if xs.shape[0] != xq.shape[0] or xs.shape[0] != ys.shape[0] or xq.shape[0] != yq.shape[0]:
            raise ValueError(
                f"support and query batches must have the same number of tasks (dim 0), got "
                f"xs {tuple(xs.shape)}, ys {tuple(ys.shape)}, "
                f"xq {tuple(xq.shape)}, yq {tuple(yq.shape)}"
            )
        params, buffers = self._state()
        lrs = self._lrs()
        first_order = self.config.algorithm == "fomaml"
        steps = self.config.inner_steps

        def one_task(xs1: Tensor, ys1: Tensor, xq1: Tensor, yq1: Tensor) -> Tensor:
            return query_loss(
                self.model,
                params,
                buffers,
                (xs1, ys1),
                (xq1, yq1),
                self.loss_fn,
                lrs,
                steps,
                first_order,
            )

        return vmap(one_task)(xs, ys, xq, yq).mean()

    def adapt(self, x: Tensor, y: Tensor, steps: int | None = None) -> Params:
        """Adapted parameters for one task's support set (use with ``functional_call``)."""
        params, buffers = self._state()
        n = self.config.inner_steps if steps is None else steps
        return adapt(self.model, params, buffers, x, y, self.loss_fn, self._lrs(), n, True)
