"""Behaviour cloning kept in the actor's loss during RL (TD3+BC-style), so that RL
fine-tuning does not wreck a cloned policy while the critic is still poor.

``[demos.regulariser]``. An :class:`~mtrl.agents.sac.ExtensionWrapper` around the
previous extension (a continual method's penalty and this one add): each actor update adds
``weight * mean|Q(s, pi(s))| * bc_loss`` on a task-balanced batch of demonstrations,
the ``mean|Q|`` factor (held constant; ``Q`` combined over the critics as the actor's
own term combines them) making ``weight`` unitless against the actor's ``-Q`` term as
TD3+BC's normalisation does. With ``q_filter`` (AWAC's and Nair et
al.'s Q-filter) a demonstration pulls the actor only where the critics value its action
above the actor's own, so RL can leave the clone where the critics know better. The loop
sets ``weight`` before each update from the recipe's schedule; demonstrations are drawn
with the loop's seeded generator, so a resumed run draws the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mtrl.agents.hooks import LoopComponent
from mtrl.agents.sac import ExtensionWrapper, UpdateExtension
from mtrl.config import bounded, check_fields
from mtrl.demos.bc import BCLoss, bc_loss
from mtrl.demos.replay import DemoReplay, demo_share
from mtrl.demos.setup import DemoSetup
from mtrl.errors import ConfigError

if TYPE_CHECKING:
    from mtrl.agents.sac import MTSAC


class DemoBCRegulariser(ExtensionWrapper, LoopComponent):
    """The cloning loss on demonstrations, added to every actor update at ``weight``:
    ``start_weight`` decaying linearly to ``final_weight`` over ``decay_steps`` env steps
    after ``learning_starts`` (0: fixed)."""

    def __init__(
        self,
        agent: MTSAC,
        inner: UpdateExtension,
        demos: DemoReplay,
        rows_per_task: int,
        loss_kind: BCLoss,
        generator: torch.Generator,
        # start weight, decay steps, learning starts, final weight
        schedule: tuple[float, int, int, float] = (0.0, 0, 0, 0.0),
        q_filter: bool = False,
    ) -> None:
        super().__init__(inner)
        self.agent, self.demos, self.loss_kind, self.generator = agent, demos, loss_kind, generator
        self.per = max(1, rows_per_task)
        self.schedule = schedule
        self.weight = 0.0
        self.last_loss = 0.0  # the cloning loss of the last update (0 when weight is 0)
        self.q_filter = q_filter
        self.kept = 1.0  # the share of demonstrations the Q-filter kept in the last update

    def before_update(self, steps: int) -> None:
        start, decay, learning_starts, final = self.schedule
        self.weight = demo_share(start, decay, steps - learning_starts, final)

    def update_metrics(self) -> dict[str, float]:
        metrics = {"bc_weight": self.weight, "rl_bc_loss": self.last_loss}
        if self.q_filter:
            metrics["q_filter_kept"] = self.kept
        return metrics

    def actor_penalty(self) -> Tensor | None:
        base = self.inner.actor_penalty()
        tasks = self.demos.tasks()  # grows with self-imitation
        if self.weight <= 0.0 or len(tasks) == 0:
            self.last_loss = 0.0
            return base
        batch = self.demos.sample(tasks, self.per, self.generator)
        mean, log_std = self.agent.actor(batch.obs, batch.task_ids)
        rows = bc_loss(self.loss_kind, batch.actions, mean, log_std)
        with torch.no_grad():
            value = self.agent.actor_value
            own = value(self.agent.critic(batch.obs, torch.tanh(mean), batch.task_ids))
            q_scale = own.abs().mean().clamp_min(1e-6)
            if self.q_filter:
                demo = value(self.agent.critic(batch.obs, batch.actions, batch.task_ids))
                keep = q_filter_mask(demo, own)
                self.kept = float(keep.mean())
                rows = rows * keep
        loss = rows.mean()
        self.last_loss = float(loss.detach())
        weighted = self.weight * q_scale * loss
        return weighted if base is None else base + weighted


def q_filter_mask(q_demo: Tensor, q_policy: Tensor) -> Tensor:
    """1 where the demonstration's action is valued above the policy's (ties keep the
    demonstration: an untrained critic filters nothing out), else 0."""
    return (q_demo >= q_policy).to(q_demo.dtype)


@dataclass(frozen=True)
class RegulariserConfig:
    """``[demos.regulariser]``: the cloning loss kept in the actor's loss during RL at
    ``weight``, decaying linearly to ``final_weight`` over ``decay_steps`` env steps after
    learning starts (0: fixed); keeps RL from wrecking the clone while the critic is
    poor, and with a floor keeps the actor near the demonstrations throughout."""

    weight: float = bounded(1.0, ge=0.0)
    decay_steps: int = bounded(0, ge=0)
    final_weight: float = bounded(0.0, ge=0.0)  # the floor the decay stops at
    loss: BCLoss = "mse"  # as [demos.bc]'s loss
    # clone a demonstration only where the critics value its action above the actor's
    q_filter: bool = False

    def __post_init__(self) -> None:
        check_fields(self, "demos.regulariser")
        if self.final_weight > 0.0 and self.decay_steps == 0:
            raise ConfigError(
                f"demos.regulariser.final_weight = {self.final_weight} needs decay_steps > "
                "0 (the env steps over which weight falls to it); for a fixed weight set "
                "weight alone"
            )
        if self.final_weight > self.weight:
            raise ConfigError(
                f"demos.regulariser.final_weight = {self.final_weight} is above weight = "
                f"{self.weight}: the weight decays from weight to final_weight; lower "
                "final_weight"
            )

    def build(self, setup: DemoSetup) -> LoopComponent | None:
        if setup.replay is None or setup.generator is None:
            return None
        agent = setup.agent
        schedule = (self.weight, self.decay_steps, setup.learning_starts, self.final_weight)
        per = setup.batch_size // agent.num_tasks
        term = DemoBCRegulariser(
            agent,
            agent.extension,
            setup.replay,
            per,
            self.loss,
            setup.generator,
            schedule,
            self.q_filter,
        )
        agent.extension = term
        return term
