"""MetaLearner: MAML (second order), first-order MAML, ANIL and Meta-SGD, vmapped over tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from mtrl.config import bounded, check_fields
from mtrl.errors import MtrlError
from mtrl.meta.batched import linear_stack, stacked_adapt, stacked_forward, task_losses
from mtrl.meta.functional import LossFn, Params, adapt, query_loss

Algorithm = Literal["maml", "fomaml", "anil", "metasgd"]


class UnsupportedModuleError(MtrlError, TypeError):
    """The model has a layer the functional fast path cannot adapt per task."""


@dataclass(frozen=True)
class LayerLr:
    """A fixed inner learning rate for the parameters whose names start with ``prefix``."""

    prefix: str
    lr: float = bounded(0.01, gt=0.0)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class MetaLearnerConfig:
    """Which meta-learner, and its inner loop.

    The inner learning rate is fixed (``inner_lr``), per layer (``layer_lrs``: the
    longest matching name prefix wins, the rest use ``inner_lr``), or learned per
    element (``algorithm = "metasgd"``, initialised from the fixed/per-layer values).
    """

    algorithm: Algorithm = "maml"
    inner_lr: float = bounded(0.01, gt=0.0)
    inner_steps: int = bounded(1, ge=1, le=100)
    head: str = ""  # ANIL: parameter-name prefix of the head (default: the last layer)
    layer_lrs: list[LayerLr] = field(default_factory=list)
    # "auto": stacked-parameter bmm path for MLPs (nn.Sequential of Linear + activations),
    # vmap otherwise; "vmap": always torch.func.vmap. Both compute the same gradients.
    batching: Literal["auto", "vmap"] = "auto"
    # torch.compile the meta-loss (the vmap path: compiled double backward is not
    # supported, torch.func.grad inside the graph is). Same numbers within float
    # tolerance; compiling takes seconds up front; needs a C++ compiler on CPU.
    compile: bool = False

    def __post_init__(self) -> None:
        check_fields(self)


def initial_lrs(names: list[str], config: MetaLearnerConfig) -> dict[str, float]:
    """The inner learning rate of each named parameter under ``config``."""
    known = set(names)
    for rule in config.layer_lrs:
        if not any(n.startswith(rule.prefix) for n in known):
            raise MtrlError(
                f"layer_lrs prefix {rule.prefix!r} matches no adapted parameter; "
                f"adapted parameters: {names}"
            )
    out = {}
    for n in names:
        matches = [r for r in config.layer_lrs if n.startswith(r.prefix)]
        out[n] = max(matches, key=lambda r: len(r.prefix)).lr if matches else config.inner_lr
    return out


def adapted_names(model: nn.Module, config: MetaLearnerConfig) -> list[str]:
    """Parameters the inner loop adapts: all, or ANIL's head (``config.head`` prefix)."""
    names = [n for n, _ in model.named_parameters()]
    if config.algorithm != "anil":
        return names
    prefix = config.head or names[-1].rsplit(".", 1)[0]
    adapted = [n for n in names if n.startswith(prefix)]
    if not adapted:
        raise MtrlError(f"head prefix {prefix!r} matches no parameter; parameters: {names}")
    return adapted


def learned_lrs(
    model: nn.Module, fixed: dict[str, float], config: MetaLearnerConfig
) -> nn.ParameterDict:
    """Meta-SGD's per-element rates (keys: names with "." as "__"); empty otherwise."""
    if config.algorithm != "metasgd":
        return nn.ParameterDict({})
    params = dict(model.named_parameters())
    return nn.ParameterDict(
        {
            n.replace(".", "__"): nn.Parameter(torch.full_like(params[n].detach(), lr))
            for n, lr in fixed.items()
        }
    )


def lr_tensors(
    model: nn.Module, fixed: dict[str, float], learned: nn.ParameterDict, config: MetaLearnerConfig
) -> dict[str, Tensor]:
    """The inner learning rate of every adapted parameter, as tensors for ``sgd_step``."""
    if config.algorithm == "metasgd":
        return {n: learned[n.replace(".", "__")] for n in fixed}
    params = dict(model.named_parameters())
    return {
        n: torch.tensor(lr, dtype=params[n].dtype, device=params[n].device)
        for n, lr in fixed.items()
    }


def shares_submodules(model: nn.Module) -> bool:
    """Whether a module or parameter is reachable under two names (a shared trunk):
    ``torch.func.functional_call`` does not restore such models correctly."""
    modules = len(list(model.named_modules(remove_duplicate=False)))
    params = len(list(model.named_parameters(remove_duplicate=False)))
    return modules != len(list(model.named_modules())) or params != len(
        list(model.named_parameters())
    )


def _check_functional(model: nn.Module) -> None:
    for name, mod in model.named_modules():
        norm = isinstance(mod, nn.modules.batchnorm._BatchNorm)
        if norm and mod.training and mod.track_running_stats:
            raise UnsupportedModuleError(
                f"{name or type(model).__name__} ({type(mod).__name__}) updates running "
                "statistics in training mode, which cannot be batched across tasks; use "
                "track_running_stats=False, LayerNorm/GroupNorm, or call .eval() on it"
            )


def _check_batch(xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor) -> None:
    if xs.dim() < 3 or xq.dim() < 3:
        raise ValueError(
            f"task batches are [tasks, shots, features...]; got xs {tuple(xs.shape)} and "
            f"xq {tuple(xq.shape)}: add the task axis (x.unsqueeze(0) for a single task)"
        )
    if xs.shape[1] != ys.shape[1] or xq.shape[1] != yq.shape[1]:
        raise ValueError(
            f"inputs and targets must have the same shots (dim 1), got xs {tuple(xs.shape)}, "
            f"ys {tuple(ys.shape)}, xq {tuple(xq.shape)}, yq {tuple(yq.shape)}"
        )
    if xs.shape[0] != xq.shape[0] or xs.shape[0] != ys.shape[0] or xq.shape[0] != yq.shape[0]:
        raise ValueError(
            f"support and query batches must have the same number of tasks (dim 0), got "
            f"xs {tuple(xs.shape)}, ys {tuple(ys.shape)}, "
            f"xq {tuple(xq.shape)}, yq {tuple(yq.shape)}"
        )


class MetaLearner(nn.Module):
    """Wraps a model; :meth:`meta_loss` gives the mean query loss of a task batch.

    Task batches are stacked tensors ``[tasks, shots, ...]``; the inner loop of all tasks
    runs at once: stacked parameters and ``bmm`` for MLPs, ``vmap`` for other modules
    (``config.batching``). ``loss.backward()`` gives the meta-gradient (second order for
    ``maml`` and ``metasgd``, first order for ``fomaml``), including Meta-SGD's learning
    rates (``self.lrs``).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, config: MetaLearnerConfig) -> None:
        super().__init__()
        _check_functional(model)
        if shares_submodules(model):
            raise UnsupportedModuleError(
                f"{type(model).__name__} reaches a submodule or parameter under two names; "
                "the batched inner loop needs each once: register the shared part once, or "
                "use mtrl.meta.MAML (one task at a time)"
            )
        self.model = model
        self.loss_fn = loss_fn
        self.config = config
        self.adapted = adapted_names(model, config)
        self._stack = linear_stack(model) if config.batching == "auto" else None
        self._compiled: Any = None
        self._checked: tuple[tuple[int, ...], ...] | None = None
        self.fixed_lrs = initial_lrs(self.adapted, config)
        self.lrs = learned_lrs(model, self.fixed_lrs, config)

    def _lrs(self) -> dict[str, Tensor]:
        return lr_tensors(self.model, self.fixed_lrs, self.lrs, self.config)

    def _state(self) -> tuple[Params, Params]:
        return dict(self.model.named_parameters()), dict(self.model.named_buffers())

    def _check_outputs(self, xs: Tensor, ys: Tensor, yq: Tensor) -> None:
        """Targets shaped like the model's outputs (checked once per batch shape), so
        that a loss never silently broadcasts ``[n, 1]`` against ``[n, k]``."""
        key = (tuple(xs.shape), tuple(ys.shape), tuple(yq.shape))
        if key == self._checked:
            return
        if ys.dim() == xs.dim() or yq.dim() == xs.dim():  # regression-style targets
            with torch.no_grad():
                out = self.model(xs[0, :1])
            for name, y in (("ys", ys), ("yq", yq)):
                if y.dim() == xs.dim() and y.shape[-1] != out.shape[-1]:
                    raise ValueError(
                        f"{name} {tuple(y.shape)} has {y.shape[-1]} values per sample but the "
                        f"model outputs {out.shape[-1]}; match the targets to the model"
                    )
        self._checked = key

    def meta_loss(self, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor) -> Tensor:
        """Mean query loss over tasks after each adapts on its support set."""
        _check_batch(xs, ys, xq, yq)
        self._check_outputs(xs, ys, yq)
        if self.config.compile:
            if self._compiled is None:
                self._compiled = torch.compile(self._vmap_meta_loss)
            return self._compiled(xs, ys, xq, yq)
        if self._stack is not None and xs.dim() == 3:
            params, _ = self._state()
            lrs = self._lrs()
            first_order = self.config.algorithm == "fomaml"
            steps = self.config.inner_steps
            fast = stacked_adapt(self._stack, params, xs, ys, self.loss_fn, lrs, steps, first_order)
            out = stacked_forward(self._stack, fast, xq)
            return task_losses(self.loss_fn, out, yq).mean()
        return self._vmap_meta_loss(xs, ys, xq, yq)

    def _vmap_meta_loss(self, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor) -> Tensor:
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

    @torch.no_grad()
    def adaptation_losses(
        self, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor, max_steps: int
    ) -> Tensor:
        """Per-task query losses ``[max_steps + 1, tasks]`` after 0, 1, ... inner steps.

        An evaluation pass: no graph is kept; every task of the batch adapts at once.
        """
        _check_batch(xs, ys, xq, yq)
        params, buffers = self._state()
        params = {n: p.detach() for n, p in params.items()}
        lrs = {n: lr.detach() for n, lr in self._lrs().items()}
        if self._stack is not None and xs.dim() == 3:
            return self._stacked_adaptation_losses(params, lrs, xs, ys, xq, yq, max_steps)

        def one_task(xs1: Tensor, ys1: Tensor, xq1: Tensor, yq1: Tensor) -> Tensor:
            fast, out = params, []
            for step in range(max_steps + 1):
                if step:
                    fast = adapt(self.model, fast, buffers, xs1, ys1, self.loss_fn, lrs, 1, True)
                pred = functional_call(self.model, (fast, dict(buffers)), (xq1,))
                out.append(self.loss_fn(pred, yq1))
            return torch.stack(out)

        with torch.enable_grad():  # the inner step needs autograd even when evaluating
            return vmap(one_task, out_dims=1)(xs, ys, xq, yq).detach()

    def _stacked_adaptation_losses(
        self,
        params: Params,
        lrs: dict[str, Tensor],
        xs: Tensor,
        ys: Tensor,
        xq: Tensor,
        yq: Tensor,
        max_steps: int,
    ) -> Tensor:
        layers = self._stack or []
        out = [task_losses(self.loss_fn, stacked_forward(layers, params, xq), yq)]
        tasks = xs.shape[0]
        fast = {
            n: p.unsqueeze(0).expand(tasks, *p.shape) if n in lrs else p for n, p in params.items()
        }
        with torch.enable_grad():
            for _ in range(max_steps):
                fast = {n: p.detach().requires_grad_(n in lrs) for n, p in fast.items()}
                fast = stacked_adapt(layers, fast, xs, ys, self.loss_fn, lrs, 1, True, expand=False)
                out.append(task_losses(self.loss_fn, stacked_forward(layers, fast, xq), yq))
        return torch.stack(out).detach()

    def adapt(self, x: Tensor, y: Tensor, steps: int | None = None) -> Params:
        """Adapted parameters for one task's support set (use with ``functional_call``)."""
        params, buffers = self._state()
        n = self.config.inner_steps if steps is None else steps
        return adapt(self.model, params, buffers, x, y, self.loss_fn, self._lrs(), n, True)
