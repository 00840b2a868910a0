"""MT-PPO's phase before RL: the policy cloned on demonstrations (``[demos.bc]``),
then evaluated: where RL starts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mtrl.agents.hooks import LoopComponent
from mtrl.agents.ppo import ActorCritic
from mtrl.demos.bc import CloningConfig, clone, gaussian_bc_loss
from mtrl.evaluation import eval_metrics


class PolicyCloning(LoopComponent):
    """Box actions: ``demos.bc.loss`` of the Gaussian ("mse" fits the mean, "nll" also
    the per-task spread); Discrete: the actions' cross-entropy. Seeded by ``seed``."""

    def __init__(
        self,
        ac: ActorCritic,
        cfg: CloningConfig,
        demos: dict[str, np.ndarray],
        log: Callable[[Mapping[str, Any]], None],
        evaluate: Callable[[], list[dict[str, Any]]],
        seed: int,
        device: str,
    ) -> None:
        self.ac, self.cfg, self.demos, self.log = ac, cfg, demos, log
        self.evaluate, self.seed, self.device = evaluate, seed, device

    def before_loop(self) -> tuple[int, list[dict[str, Any]]]:
        ac, dev, demos = self.ac, self.device, self.demos
        o = torch.as_tensor(demos["obs"], dtype=torch.float32, device=dev)
        o = o.reshape(o.shape[0], -1)
        t = torch.as_tensor(demos["task_id"], dtype=torch.long, device=dev)
        a = torch.as_tensor(demos["action"], device=dev)

        def batch_loss(idx: Tensor) -> Tensor:
            out = ac.pi(o[idx], t[idx])
            if ac.discrete:
                return nn.functional.cross_entropy(out, a[idx].long().reshape(-1))
            act = a[idx].float().reshape(out.shape)
            return gaussian_bc_loss(self.cfg.loss, act, out, ac.log_std[t[idx]]).mean()

        params = [*ac.pi.parameters(), ac.log_std]
        clone(params, batch_loss, demos["task_id"], self.cfg, self.seed + 17, dev, self.log)
        self.log(eval_metrics(self.evaluate(), 0))  # the clone's success (BC alone)
        return 0, []
