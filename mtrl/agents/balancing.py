"""Gradient balancing against task interference, as composable pieces.

Gradient surgery works on per-task gradients stacked as ``G [tasks, params]`` and
returns one update direction (pure functions): :func:`pcgrad`, :func:`cagrad`.
Loss weighting works on per-task losses ``[tasks]`` and keeps a little state
(modules): :class:`UncertaintyWeighting`, :class:`GradNorm`, :class:`FAMO`.
:func:`per_task_gradients` and :func:`assign_gradient` connect both to a model;
:class:`TaskBalancer` makes any of them one optimizer step, as the agents use them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn


def _check_matrix(grads: Tensor) -> None:
    if grads.dim() != 2 or grads.shape[0] < 1:
        raise ValueError(f"per-task gradients must be [tasks, params], got {tuple(grads.shape)}")


def pcgrad(grads: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """PCGrad (Yu et al. 2020): project each task's gradient off the normal plane of every
    other task's gradient it conflicts with (negative dot product), in a random order per
    task; return the sum of the projected gradients.

    Vectorized over tasks: step ``k`` projects every task against its ``k``-th partner.
    """
    _check_matrix(grads)
    tasks = grads.shape[0]
    if tasks == 1:
        return grads[0].clone()
    # each task's partners in random order (itself excluded)
    keys = torch.rand(tasks, tasks, generator=generator).to(grads.device)
    keys.fill_diagonal_(2.0)  # sorts last
    order = keys.argsort(dim=1)[:, : tasks - 1]
    sq_norms = (grads * grads).sum(dim=1).clamp_min(1e-20)
    projected = grads.clone()
    for k in range(tasks - 1):
        partner = order[:, k]
        g_j = grads[partner]
        dots = (projected * g_j).sum(dim=1)
        coef = torch.where(dots < 0, dots / sq_norms[partner], torch.zeros_like(dots))
        projected = projected - coef.unsqueeze(1) * g_j
    return projected.sum(dim=0)


def project_simplex(v: Tensor) -> Tensor:
    """Euclidean projection of ``v`` onto the probability simplex (sort-based)."""
    u, _ = torch.sort(v, descending=True)
    css = torch.cumsum(u, dim=0) - 1.0
    idx = torch.arange(1, v.numel() + 1, dtype=v.dtype, device=v.device)
    rho = int((u - css / idx > 0).nonzero().max())
    return (v - css[rho] / (rho + 1)).clamp_min(0.0)


def _simplex_weights(gram: Tensor, g0_gram: Tensor, c_norm: float, iters: int) -> Tensor:
    """argmin over the simplex of ``w.G g0 + c||g0|| ||G^T w||`` (CAGrad's dual) by
    projected gradient descent; ``gram = G G^T``, ``g0_gram = G g0``. Keeps the best
    iterate, so the answer never gets worse with more iterations."""
    step = 0.5 / (float(gram.norm()) + 1e-12)
    w = torch.full_like(g0_gram, 1.0 / g0_gram.numel())
    best_w, best = w, float("inf")
    for _ in range(iters):
        norm = torch.sqrt(w @ gram @ w).clamp_min(1e-12)
        value = float(w @ g0_gram + c_norm * norm)
        if value < best:
            best_w, best = w, value
        w = project_simplex(w - step * (g0_gram + c_norm * (gram @ w) / norm))
    return best_w


def cagrad(grads: Tensor, c: float = 0.5, iters: int = 100) -> Tensor:
    """CAGrad (Liu et al. 2021): the update ``g0 + (c ||g0|| / ||g_w||) g_w`` that maximizes
    the worst task's improvement within a ball of radius ``c ||g0||`` around the mean
    gradient ``g0``; ``c = 0`` gives the plain mean. Returns the mean-scale direction
    (divided by ``1 + c``, as in the paper's code)."""
    _check_matrix(grads)
    if c < 0:
        raise ValueError(f"c must be >= 0, got {c}")
    g0 = grads.mean(dim=0)
    if c == 0 or grads.shape[0] == 1:
        return g0
    gram = (grads @ grads.T).double()
    g0_norm = float(g0.norm())
    w = _simplex_weights(gram, (grads @ g0).double(), c * g0_norm, iters).to(grads.dtype)
    gw = w @ grads
    d = g0 + (c * g0_norm / gw.norm().clamp_min(1e-12)) * gw
    return d / (1.0 + c)


def per_task_gradients(losses: Tensor, params: Sequence[Tensor]) -> Tensor:
    """``G [tasks, params]``: the flattened gradient of each task's loss (zeros if unused)."""
    if losses.dim() != 1:
        raise ValueError(f"losses must be [tasks], got {tuple(losses.shape)}")
    rows = []
    for i in range(losses.shape[0]):
        gs = torch.autograd.grad(losses[i], list(params), retain_graph=True, allow_unused=True)
        rows.append(
            torch.cat(
                [
                    (torch.zeros_like(p) if g is None else g).reshape(-1)
                    for p, g in zip(params, gs, strict=True)
                ]
            )
        )
    return torch.stack(rows)


def assign_gradient(params: Sequence[Tensor], flat: Tensor) -> None:
    """Write a flat update direction into ``p.grad`` of each parameter (for any optimizer)."""
    total = sum(p.numel() for p in params)
    if flat.shape != (total,):
        raise ValueError(f"flat gradient has shape {tuple(flat.shape)}, params need ({total},)")
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


class UncertaintyWeighting(nn.Module):
    """Kendall et al. 2018: ``sum_t exp(-s_t) L_t + s_t`` with learned ``s_t = log sigma_t^2``."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(num_tasks))

    def forward(self, losses: Tensor) -> Tensor:
        if losses.shape != self.log_vars.shape:
            raise ValueError(f"losses must be [{self.log_vars.numel()}], got {tuple(losses.shape)}")
        return (torch.exp(-self.log_vars) * losses + self.log_vars).sum()


class GradNorm(nn.Module):
    """GradNorm (Chen et al. 2018): task weights trained so that each task's gradient norm
    on the shared parameters tracks the mean norm times its relative inverse training
    rate to the power ``alpha``. Weights are renormalized to sum to ``tasks``.

    Use: ``loss = gradnorm.weighted(losses)``; ``gradnorm.update(losses, shared)`` (before
    the model's backward, with the graph still alive); then the model's step.
    """

    def __init__(self, num_tasks: int, alpha: float = 1.5, lr: float = 0.025) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.ones(num_tasks))
        self.alpha = alpha
        self.register_buffer("initial", torch.zeros(num_tasks))
        self._opt = torch.optim.Adam([self.weights], lr=lr)

    def weighted(self, losses: Tensor) -> Tensor:
        return (self.weights.detach() * losses).sum()

    def update(self, losses: Tensor, shared: Sequence[Tensor]) -> Tensor:
        """One step on the weights; returns the GradNorm loss."""
        initial: Tensor = self.initial  # type: ignore[assignment]
        if bool((initial == 0).all()):
            initial.copy_(losses.detach())
        norms = torch.stack(
            [
                torch.cat(
                    [
                        g.reshape(-1)
                        for g in torch.autograd.grad(
                            self.weights[i] * losses[i],
                            list(shared),
                            retain_graph=True,
                            create_graph=True,
                        )
                    ]
                ).norm()
                for i in range(losses.shape[0])
            ]
        )
        ratio = losses.detach() / initial.clamp_min(1e-12)
        target = (norms.mean() * (ratio / ratio.mean()) ** self.alpha).detach()
        gn_loss = (norms - target).abs().sum()
        self._opt.zero_grad()
        self.weights.grad = torch.autograd.grad(gn_loss, self.weights, retain_graph=True)[0]
        self._opt.step()
        with torch.no_grad():
            self.weights.clamp_(min=1e-4)
            self.weights.mul_(self.weights.numel() / self.weights.sum())
        return gn_loss.detach()


class FAMO(nn.Module):
    """FAMO (Liu et al. 2023): fast adaptive multitask optimization with O(1) memory.

    Task logits ``xi`` give weights ``z = softmax(xi)``; the model minimizes
    ``sum_t z_t log(L_t - min_t) / c`` (``c`` normalizes the step), and after the model's
    step ``update(new_losses)`` moves ``xi`` so that tasks whose log loss dropped less
    gain weight (a gradient step with weight decay ``gamma``).
    """

    def __init__(
        self, num_tasks: int, lr: float = 0.025, gamma: float = 1e-3, eps: float = 1e-8
    ) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_tasks))
        self.register_buffer("min_losses", torch.zeros(num_tasks))
        self.eps = eps
        self._opt = torch.optim.Adam([self.logits], lr=lr, weight_decay=gamma)
        self._prev: Tensor | None = None

    def weights(self) -> Tensor:
        return torch.softmax(self.logits.detach(), dim=0)

    def forward(self, losses: Tensor) -> Tensor:
        mins: Tensor = self.min_losses  # type: ignore[assignment]
        shifted = losses - mins + self.eps
        z = self.weights()
        c = (z / shifted.detach()).sum()
        self._prev = losses.detach()
        return (z * shifted.log()).sum() / c

    def update(self, new_losses: Tensor) -> None:
        """Call with the same tasks' losses after the model's step."""
        if self._prev is None:
            raise RuntimeError("FAMO.update() needs a forward() first")
        mins: Tensor = self.min_losses  # type: ignore[assignment]
        delta = (self._prev - mins + self.eps).log() - (new_losses.detach() - mins + self.eps).log()
        with torch.enable_grad():
            z = torch.softmax(self.logits, dim=0)
            (grad,) = torch.autograd.grad(z, self.logits, grad_outputs=delta)
        self._opt.zero_grad()
        self.logits.grad = grad
        self._opt.step()
        self._prev = None


def balanced_step(
    opt: torch.optim.Optimizer,
    params: Sequence[Tensor],
    losses: Tensor,
    reg: Tensor,
    mode: str = "none",
    cagrad_c: float = 0.5,
    max_grad_norm: float | None = None,
    before_step: Callable[[], None] | None = None,
) -> None:
    """One optimizer step on per-task ``losses`` (+ a shared ``reg`` term).

    ``mode``: "none" (mean of the losses), "pcgrad" (projected sum / tasks) or "cagrad".
    ``before_step`` sees the gradients before clipping and the step (to project or
    mask them).
    """
    opt.zero_grad(set_to_none=True)
    if mode == "none":
        (losses.mean() + reg).backward()
    elif mode in ("pcgrad", "cagrad"):
        grads = per_task_gradients(losses, params)
        direction = pcgrad(grads) / len(losses) if mode == "pcgrad" else cagrad(grads, cagrad_c)
        if reg.requires_grad:
            reg_grads = torch.autograd.grad(reg, list(params), allow_unused=True)
            direction = direction + torch.cat(
                [
                    (torch.zeros_like(p) if g is None else g).reshape(-1)
                    for p, g in zip(params, reg_grads, strict=True)
                ]
            )
        assign_gradient(params, direction)
    else:
        raise ValueError(f"balancing must be 'none', 'pcgrad' or 'cagrad', got {mode!r}")
    if before_step is not None:
        before_step()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(list(params), max_grad_norm)
    opt.step()


BalancingMode = Literal["none", "pcgrad", "cagrad", "uncertainty", "gradnorm", "famo"]
SURGERY_MODES = ("none", "pcgrad", "cagrad")
WEIGHTING_MODES = ("uncertainty", "gradnorm", "famo")


class TaskBalancer(nn.Module):
    """One optimizer step on per-task losses with any balancing method.

    ``none``/``pcgrad``/``cagrad`` work on gradients (:func:`balanced_step`). The loss
    weightings need losses bounded below by 0 (``log L`` for FAMO, ``L / L_0`` for
    GradNorm, ``exp(-s) L`` for uncertainty weighting would push a negative loss's
    weight to infinity); GradNorm needs the ``shared`` parameters whose gradient norms
    it balances and FAMO a ``recompute`` of the same batch's losses after the step.
    The weighting's own parameters have their own Adam (``lr``; ``weight_lr`` for
    GradNorm and FAMO, as in their papers).
    """

    def __init__(
        self,
        mode: BalancingMode,
        num_tasks: int,
        *,
        lr: float = 3e-4,
        cagrad_c: float = 0.5,
        gradnorm_alpha: float = 1.5,
        weight_lr: float = 0.025,
        famo_gamma: float = 1e-3,
    ) -> None:
        super().__init__()
        modes = SURGERY_MODES + WEIGHTING_MODES
        if mode not in modes:
            raise ValueError(f"unknown balancing {mode!r}; choose from {', '.join(modes)}")
        self.mode = mode
        self.num_tasks = num_tasks
        self.cagrad_c = cagrad_c
        self.uncertainty = UncertaintyWeighting(num_tasks) if mode == "uncertainty" else None
        self.gradnorm = (
            GradNorm(num_tasks, gradnorm_alpha, weight_lr) if mode == "gradnorm" else None
        )
        self.famo = FAMO(num_tasks, weight_lr, famo_gamma) if mode == "famo" else None
        self._uw_opt = (
            torch.optim.Adam(self.uncertainty.parameters(), lr=lr) if self.uncertainty else None
        )

    def task_weights(self) -> Tensor:
        """Each task's current weight, scaled to mean 1 (for logging): ``exp(-s_t)`` for
        uncertainty weighting, GradNorm's weights, FAMO's softmax weights of the log losses."""
        t = self.num_tasks
        if self.uncertainty is not None:
            w = torch.exp(-self.uncertainty.log_vars.detach())
        elif self.gradnorm is not None:
            w = self.gradnorm.weights.detach()
        elif self.famo is not None:
            w = self.famo.weights()
        else:
            return torch.ones(t)
        return w * (t / w.sum())

    def step(
        self,
        opt: torch.optim.Optimizer,
        params: Sequence[Tensor],
        losses: Tensor,
        reg: Tensor,
        *,
        shared: Sequence[Tensor] = (),
        recompute: Callable[[], Tensor] | None = None,
        max_grad_norm: float | None = None,
        before_step: Callable[[], None] | None = None,
    ) -> None:
        """Zero the grads, back-propagate the balanced loss + ``reg`` and step ``opt``
        (``before_step`` sees the gradients first)."""
        if losses.shape != (self.num_tasks,):
            raise ValueError(f"losses must be [{self.num_tasks}], got {tuple(losses.shape)}")
        if self.mode in SURGERY_MODES:
            balanced_step(
                opt, params, losses, reg, self.mode, self.cagrad_c, max_grad_norm, before_step
            )
            return
        if bool((losses.detach() < 0).any()):
            raise ValueError(
                f"{self.mode} weighting needs losses >= 0, got {losses.detach().tolist()}; "
                "use pcgrad or cagrad for losses without a lower bound"
            )
        opt.zero_grad(set_to_none=True)
        if self.uncertainty is not None and self._uw_opt is not None:
            self._uw_opt.zero_grad(set_to_none=True)
            total = self.uncertainty(losses) / self.num_tasks
        elif self.gradnorm is not None:
            if not shared:
                raise ValueError("gradnorm needs the shared parameters (shared=...)")
            self.gradnorm.update(losses, shared)
            total = self.gradnorm.weighted(losses) / self.num_tasks
        else:
            if recompute is None:
                raise ValueError("famo needs recompute=: the same batch's losses after the step")
            total = cast(FAMO, self.famo)(losses)
        (total + reg).backward()
        if before_step is not None:
            before_step()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(list(params), max_grad_norm)
        opt.step()
        if self._uw_opt is not None:
            self._uw_opt.step()
        if self.famo is not None and recompute is not None:
            with torch.no_grad():
                self.famo.update(recompute())

    def optimizer_state(self) -> dict[str, Any]:
        """State of the weighting's own optimizer (checkpoints)."""
        opt = self._weight_optimizer()
        return {} if opt is None else opt.state_dict()

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        opt = self._weight_optimizer()
        if opt is not None and state:
            opt.load_state_dict(state)

    def _weight_optimizer(self) -> torch.optim.Optimizer | None:
        if self.gradnorm is not None:
            return self.gradnorm._opt
        if self.famo is not None:
            return self.famo._opt
        return self._uw_opt
