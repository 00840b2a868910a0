"""learn2learn as an optional backend: the same meta-learner, run by ``learn2learn``.

learn2learn lives in its own environment (``bash scripts/setup_learn2learn.sh``); it is
imported only when a recipe asks for ``backend = "learn2learn"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from mtrl.errors import MtrlError
from mtrl.meta.maml import MetaLearner, MetaLearnerConfig

INSTALL_HINT = (
    "learn2learn is not importable in this environment. It does not install from PyPI on "
    "Python >= 3.11; run `bash scripts/setup_learn2learn.sh` and use .venv-l2l/bin/mtrl "
    "(or .venv-l2l/bin/python), or set backend = 'mtrl'"
)


class BackendUnavailableError(MtrlError, ImportError):
    """An optional backend was asked for but is not installed here."""


def import_learn2learn() -> Any:
    """``learn2learn``, or a BackendUnavailableError saying how to install it."""
    try:
        import learn2learn
    except ImportError as exc:
        raise BackendUnavailableError(f"{INSTALL_HINT} ({exc})") from exc
    return learn2learn


def wrap_l2l(learner: MetaLearner) -> Any:
    """learn2learn's MAML / MetaSGD over ``learner.model``, sharing its parameters.

    For Meta-SGD the learned rates are ``learner.lrs`` themselves, so one optimizer over
    ``learner.parameters()`` trains both backends identically.
    """
    l2l = import_learn2learn()
    cfg = learner.config
    if cfg.algorithm in ("maml", "fomaml"):
        return l2l.algorithms.MAML(
            learner.model, lr=cfg.inner_lr, first_order=cfg.algorithm == "fomaml"
        )
    if cfg.algorithm == "metasgd":
        alg = l2l.algorithms.MetaSGD(learner.model, lr=cfg.inner_lr)
        names = [n for n, _ in learner.model.named_parameters()]
        alg.lrs = nn.ParameterList([learner.lrs[n.replace(".", "__")] for n in names])
        return alg
    raise MtrlError(f"the learn2learn backend has no {cfg.algorithm!r}; use backend = 'mtrl'")


def l2l_meta_loss_fn(learner: MetaLearner, config: MetaLearnerConfig) -> Callable[[Any], Tensor]:
    """``batch -> mean query loss``, adapting each task with a learn2learn clone."""
    alg = wrap_l2l(learner)
    loss_fn = learner.loss_fn

    def meta_loss(batch: Any) -> Tensor:
        xs, ys, xq, yq = batch[:4]
        losses = []
        for i in range(xs.shape[0]):
            clone = alg.clone()
            for _ in range(config.inner_steps):
                clone.adapt(loss_fn(clone(xs[i]), ys[i]))
            losses.append(loss_fn(clone(xq[i]), yq[i]))
        return torch.stack(losses).mean()

    return meta_loss
