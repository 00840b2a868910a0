"""Demonstrated actions kept at the critics' local maxima.

Critics fitted to a clone's demonstrations see one action per state, so they are free
to value nearby actions higher: after the warm start of a one-demonstration MT10 run,
the best of ten N(0, 0.1²) perturbations of the clone's action out-scored it in 88% of
the demonstration states, and the actor, following the critics' gradient,
walked away from the clone into failing actions. This component adds to every critic
update (warm start included) a hinge on demonstration states: how far the critics
value perturbed actions above the demonstrated one (CQL-style conservatism, Kumar et
al. 2020, restricted to a neighbourhood of the expert's actions, which are assumed
near-optimal). ``[demos.conservative]``; an
:class:`~mtrl.agents.sac.ExtensionWrapper`; perturbations and demonstrations are drawn
with the loop's seeded generator, so a resumed run draws the same ones.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mtrl.agents.hooks import LoopComponent
from mtrl.agents.sac import ExtensionWrapper, UpdateExtension
from mtrl.config import bounded, check_fields
from mtrl.demos.replay import DemoReplay
from mtrl.demos.setup import DemoSetup

if TYPE_CHECKING:
    from mtrl.agents.sac import MTSAC


def margin_penalty(q_demo: Tensor, q_near: Tensor) -> Tensor:
    """Mean over states (rows) and nearby actions (columns of ``q_near``) of how far a
    nearby action's value exceeds the demonstrated action's; 0 where it does not."""
    return torch.relu(q_near - q_demo.unsqueeze(-1)).mean()


class DemoConservatism(ExtensionWrapper, LoopComponent):
    """``weight`` x the margin penalty of both critics, added to the critics' loss."""

    def __init__(
        self,
        agent: MTSAC,
        inner: UpdateExtension,
        demos: DemoReplay,
        rows_per_task: int,
        weight: float,
        noise: float,
        samples: int,
        generator: torch.Generator,
    ) -> None:
        super().__init__(inner)
        self.agent, self.demos, self.generator = agent, demos, generator
        self.weight, self.noise, self.samples = weight, noise, samples
        self.per = max(1, rows_per_task)
        self.last_penalty = 0.0  # the unweighted penalty of the last critic update

    def update_metrics(self) -> dict[str, float]:
        return {"conservative_penalty": self.last_penalty}

    def critic_penalty(self) -> Tensor | None:
        base = self.inner.critic_penalty()
        batch = self.demos.sample(self.demos.tasks(), self.per, self.generator)
        rows, k = len(batch.task_ids), self.samples
        noise = torch.randn(
            (rows, k, batch.actions.shape[-1]), generator=self.generator, device="cpu"
        ).to(batch.actions.device)
        near = (batch.actions.unsqueeze(1) + self.noise * noise).clamp(-1.0, 1.0)
        obs = batch.obs.repeat_interleave(k, dim=0)
        tid = batch.task_ids.repeat_interleave(k)
        critic = self.agent.critic
        demo = critic(batch.obs, batch.actions, batch.task_ids)
        nearby = critic(obs, near.reshape(rows * k, -1), tid)
        # with PopArt critics, on the scale of their TD loss: each task's values over its sigma
        ones = torch.ones(rows, device=batch.obs.device)
        unit = ones if critic.popart is None else critic.popart.std[batch.task_ids]
        terms = [
            margin_penalty(d / unit, n.reshape(rows, k) / unit[:, None])
            for d, n in zip(demo, nearby, strict=True)
        ]
        penalty = functools.reduce(operator.add, terms)  # each critic of the ensemble
        self.last_penalty = float(penalty.detach())
        weighted = self.weight * penalty
        return weighted if base is None else base + weighted


@dataclass(frozen=True)
class ConservativeConfig:
    """``[demos.conservative]``: every critic update (warm start included) adds
    ``weight`` x how far the critics value N(0, noise²) perturbations (``samples`` per
    state) of a demonstrated action above it."""

    weight: float = bounded(1.0, ge=0.0)
    noise: float = bounded(0.1, gt=0.0)
    samples: int = bounded(10, ge=1)

    def __post_init__(self) -> None:
        check_fields(self, "demos.conservative")

    def build(self, setup: DemoSetup) -> LoopComponent | None:
        if setup.replay is None or setup.generator is None:
            return None
        agent = setup.agent
        per = setup.batch_size // (agent.num_tasks * self.samples)
        args = (self.weight, self.noise, self.samples, setup.generator)
        # as many (state, perturbation) pairs as the TD batch has rows
        agent.extension = DemoConservatism(agent, agent.extension, setup.replay, per, *args)
        return agent.extension
