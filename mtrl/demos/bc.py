"""Behaviour cloning of a task-conditioned tanh-Gaussian actor on demonstrations."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from mtrl.config import bounded, check_fields
from mtrl.errors import TrainingDivergedError

EPS = 1e-6

BCLoss = Literal["nll", "mse"]


@dataclass(frozen=True)
class CloningConfig:
    """``[demos.bc]``: the actor (MT-PPO: the policy) cloned on the demonstrations
    before RL starts; logged as ``bc_loss`` rows and checkpointed where RL starts."""

    steps: int = bounded(2000, ge=1)  # gradient steps on the demonstrations
    batch_size: int = bounded(256, ge=1)  # per step, balanced across tasks
    lr: float = bounded(1e-3, gt=0.0)
    # "cosine": the learning rate falls from lr to 0 over the steps, so the clone ends
    # at a minimum rather than at Adam's noise floor at a constant lr
    lr_schedule: Literal["constant", "cosine"] = "constant"
    # "mse": squared error of the deterministic action (MT10, 20 expert episodes per
    # task, 10k steps, 3 seeds: 0.90 mean success); "nll": the demonstrations'
    # likelihood under the squashed Gaussian (same: 0.21; clipped expert actions pull it)
    loss: BCLoss = "mse"
    log_every: int = bounded(100, ge=1)  # steps between bc_loss rows
    # the clone's action noise where RL starts: one pre-tanh std for every state and task
    # (0: as cloning left it; "mse" does not fit the spread, which stays near 1 - a push
    # clone that succeeds 0.96 acting on its mean succeeds 0.10 sampling at it)
    init_std: float = bounded(0.0, ge=0.0)
    # what acts before learning_starts: "random", SAC's uniform warm-up; "clone", the
    # cloned actor sampling at its spread (off-policy kinds only)
    collect: Literal["random", "clone"] = "random"

    def __post_init__(self) -> None:
        check_fields(self, "demos.bc")


def normalize_actions(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Env-scale actions to the actor's [-1, 1] (the inverse of the loop's scaling)."""
    return np.clip(2.0 * (actions - low) / (high - low) - 1.0, -1.0, 1.0)


def squashed_log_prob(actions: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """Log-density of ``actions`` in (-1, 1) under ``tanh(N(mean, exp(log_std)))``,
    summed over the last axis (actions at ±1 are pulled in by ``EPS``)."""
    a = actions.clamp(-1.0 + EPS, 1.0 - EPS)
    pre = torch.atanh(a)
    z = (pre - mean) * torch.exp(-log_std)
    normal = (-0.5 * z * z - log_std - 0.5 * math.log(2.0 * math.pi)).sum(-1)
    return normal - torch.log1p(-a * a).sum(-1)


def bc_loss(kind: BCLoss, actions: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """Per-row cloning loss: ``"nll"``, the demonstrations' negative log-likelihood under
    the squashed Gaussian (mean and spread); ``"mse"``, the squared error of the
    deterministic action ``tanh(mean)`` (no pull towards ±1 where experts saturate)."""
    if kind == "nll":
        return -squashed_log_prob(actions, mean, log_std)
    if kind == "mse":
        return ((torch.tanh(mean) - actions) ** 2).sum(-1)
    raise ValueError(f"bc loss must be 'nll' or 'mse', got {kind!r}")


def balanced_indices(task_ids: np.ndarray, batch: int, rng: np.random.Generator) -> np.ndarray:
    """A batch with (about) the same number of rows from every task present."""
    tasks = np.unique(task_ids)
    per = max(1, batch // len(tasks))
    rows = [rng.choice(np.flatnonzero(task_ids == t), size=per) for t in tasks]
    return np.sort(np.concatenate(rows))


def bc_lr(schedule: str, lr: float, step: int, steps: int) -> float:
    """The cloning learning rate of (1-based) ``step`` of ``steps``: ``lr`` throughout
    ("constant"), or ``lr * (1 + cos(pi * (step - 1) / steps)) / 2`` ("cosine", from
    ``lr`` at the first step towards 0 after the last)."""
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * (step - 1) / steps))
    raise ValueError(f"demos.bc.lr_schedule must be 'constant' or 'cosine', got {schedule!r}")


def clone(
    params: list[nn.Parameter],
    batch_loss: Callable[[Tensor], Tensor],
    task_ids: np.ndarray,
    cfg: CloningConfig,
    seed: int,
    device: str = "cpu",
    log_metrics: Callable[[dict[str, Any]], None] = lambda row: None,
) -> float:
    """``cfg.steps`` Adam steps (``cfg.lr`` under ``cfg.lr_schedule``) on ``params`` of
    ``batch_loss(rows)`` (the mean cloning loss of those demonstration rows) over
    task-balanced batches of ``cfg.batch_size``, logging ``bc_step``/``bc_loss``/``bc_lr``
    rows; returns the last loss."""
    steps, lr = cfg.steps, cfg.lr
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(params, lr=lr)
    loss_value = math.nan
    for step in range(1, steps + 1):
        rate = bc_lr(cfg.lr_schedule, lr, step, steps)
        for group in opt.param_groups:
            group["lr"] = rate
        idx = torch.as_tensor(balanced_indices(task_ids, cfg.batch_size, rng), device=device)
        loss = batch_loss(idx)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"non-finite behaviour-cloning loss at BC step {step}; lower demos.bc.lr "
                f"(now {lr}) or check the dataset for NaN observations or actions"
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
        if step % cfg.log_every == 0 or step == steps:
            log_metrics({"bc_step": step, "bc_loss": loss_value, "bc_lr": rate})
    return loss_value


def gaussian_bc_loss(kind: BCLoss, actions: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """Per-row cloning loss of an unsquashed Gaussian policy (MT-PPO's, env-scale
    actions): ``"mse"`` of its mean, or ``"nll"`` of the actions (mean and spread)."""
    if kind == "mse":
        return ((mean - actions) ** 2).sum(-1)
    if kind == "nll":
        z = (actions - mean) * torch.exp(-log_std)
        return (0.5 * z * z + log_std + 0.5 * math.log(2.0 * math.pi)).sum(-1)
    raise ValueError(f"bc loss must be 'nll' or 'mse', got {kind!r}")
