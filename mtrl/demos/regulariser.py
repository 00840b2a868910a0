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
sets ``weight`` before each update from the recipe's schedule, or with ``follow =
"success"`` one weight per task from that task's training success
(:mod:`mtrl.demos.success_gate`); demonstrations are drawn with the loop's seeded
generator, so a resumed run draws the same ones. With ``anchor = "clone"`` the term
clones the frozen clone's actions on each update's own states instead of the
demonstrations (:mod:`mtrl.demos.anchor`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor

from mtrl.agents.hooks import LoopComponent, Step
from mtrl.agents.replay import Batch, TaskReplayBuffer
from mtrl.agents.sac import ExtensionWrapper, UpdateExtension
from mtrl.config import bounded, check_fields
from mtrl.demos.anchor import CloneAnchor
from mtrl.demos.bc import BCLoss, bc_loss
from mtrl.demos.replay import DemoReplay, demo_share
from mtrl.demos.self_imitation import episode_successes
from mtrl.demos.setup import DemoSetup
from mtrl.demos.success_gate import SuccessGate
from mtrl.errors import ConfigError

if TYPE_CHECKING:
    from mtrl.agents.sac import MTSAC


class DemoBCRegulariser(ExtensionWrapper, LoopComponent):
    """The cloning loss on demonstrations (with ``anchor``: towards the frozen clone on
    the update's own states), added to every actor update at ``weight``: ``start_weight``
    decaying linearly to ``final_weight`` over ``decay_steps`` env steps after
    ``learning_starts`` (0: fixed), for all tasks or, with ``gate``, per task."""

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
        gate: SuccessGate | None = None,
        anchor: CloneAnchor | None = None,
    ) -> None:
        super().__init__(inner)
        self.agent, self.demos, self.loss_kind, self.generator = agent, demos, loss_kind, generator
        self.per = max(1, rows_per_task)
        self.schedule = schedule
        self.weight = 0.0
        self.last_loss = 0.0  # the cloning loss of the last update (0 when weight is 0)
        self.q_filter = q_filter
        self.kept = 1.0  # the share of demonstrations the Q-filter kept in the last update
        self.gate = gate  # per-task weights following training success; None: the clock
        self.task_weights: list[float] = []
        self.anchor = anchor  # the frozen clone on the update's states; None: demonstrations

    def mix(self, batch: Batch, steps: int, generator: torch.Generator) -> Batch:
        if self.anchor is not None:
            self.anchor.see(batch)
        return batch

    def before_update(self, steps: int) -> None:
        if self.anchor is not None:
            self.anchor.freeze(self.agent.actor)
        start, decay, learning_starts, final = self.schedule
        if self.gate is None:
            self.weight = demo_share(start, decay, steps - learning_starts, final)
            return
        self.gate.advance(steps)
        self.task_weights = [demo_share(start, decay, c, final) for c in self.gate.clock]
        self.weight = float(np.mean(self.task_weights))

    def observe(self, step: Step, info: dict[str, Any]) -> None:
        if self.gate is not None:
            success = episode_successes(info, len(step.done))
            self.gate.record(step.done, step.task_ids, success)

    def after_env_step(self, steps: int, buffer: TaskReplayBuffer) -> None:
        if self.gate is not None:
            self.gate.steps = steps

    def update_metrics(self) -> dict[str, float]:
        metrics = {"bc_weight": self.weight, "rl_bc_loss": self.last_loss}
        if self.q_filter:
            metrics["q_filter_kept"] = self.kept
        return metrics

    def log_metrics(self) -> dict[str, Any]:
        return {f"bc_weight/{t}": w for t, w in enumerate(self.task_weights)}

    def checkpoint(self) -> dict[str, Any]:
        state = {}
        if self.gate is not None:
            state["success_gate"] = self.gate.state_dict() | {"weights": self.task_weights}
        if self.anchor is not None:
            state["clone_anchor"] = self.anchor.state_dict()
        return state

    def restore(self, state: dict[str, Any]) -> None:
        if self.gate is not None:
            self.gate.load_state_dict(state["success_gate"])
            self.task_weights = list(state["success_gate"]["weights"])
        if self.anchor is not None:
            self.anchor.load_state_dict(state["clone_anchor"])

    def _cloned(self, tasks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """States, the actions to clone there, and their tasks: a task-balanced batch of
        demonstrations, or the update's states labelled by the frozen clone."""
        if self.anchor is not None:
            return self.anchor.targets()
        batch = self.demos.sample(tasks, self.per, self.generator)
        return batch.obs, batch.actions, batch.task_ids

    def actor_penalty(self) -> Tensor | None:
        base = self.inner.actor_penalty()
        tasks = self.demos.tasks()  # grows with self-imitation
        if self.weight <= 0.0 or len(tasks) == 0:
            self.last_loss = 0.0
            return base
        obs, actions, task_ids = self._cloned(tasks)
        mean, log_std = self.agent.actor(obs, task_ids)
        rows = bc_loss(self.loss_kind, actions, mean, log_std)
        with torch.no_grad():
            value = self.agent.actor_value
            own = value(self.agent.critic(obs, torch.tanh(mean), task_ids))
            q_scale = own.abs().mean().clamp_min(1e-6)
            if self.q_filter:
                demo = value(self.agent.critic(obs, actions, task_ids))
                keep = q_filter_mask(demo, own)
                self.kept = float(keep.mean())
                rows = rows * keep
        loss = rows.mean()
        self.last_loss = float(loss.detach())
        if self.gate is None:
            weighted = self.weight * q_scale * loss
        else:  # each demonstration at its task's weight
            per_task = torch.tensor(self.task_weights, dtype=rows.dtype, device=rows.device)
            weighted = q_scale * (rows * per_task[task_ids]).mean()
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
    # "success": each task's weight decays while its training success holds (within
    # success_tolerance of its best share over success_window episodes) and rises back
    # while it falls (mtrl.demos.success_gate); "clock": every task on the schedule
    follow: Literal["clock", "success"] = "clock"
    success_window: int = bounded(20, ge=1)  # training episodes per task
    success_tolerance: float = bounded(0.1, ge=0.0, le=1.0)
    # "clone": clone the frozen clone's actions on each update's own states (the agent's
    # replay and the demonstrations mixed in) rather than demonstrated actions
    anchor: Literal["demos", "clone"] = "demos"

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
        if self.follow == "success" and self.decay_steps == 0:
            raise ConfigError(
                'demos.regulariser.follow = "success" moves each task along the decay '
                "of weight to final_weight, but decay_steps = 0 (a fixed weight); set "
                "decay_steps > 0"
            )

    def build(self, setup: DemoSetup) -> LoopComponent | None:
        if setup.replay is None or setup.generator is None:
            return None
        agent = setup.agent
        schedule = (self.weight, self.decay_steps, setup.learning_starts, self.final_weight)
        per = setup.batch_size // agent.num_tasks
        gate = None
        if self.follow == "success":
            gate = SuccessGate(
                agent.num_tasks,
                setup.num_envs,
                self.decay_steps,
                setup.learning_starts,
                self.success_window,
                self.success_tolerance,
            )
        term = DemoBCRegulariser(
            agent,
            agent.extension,
            setup.replay,
            per,
            self.loss,
            setup.generator,
            schedule,
            self.q_filter,
            gate,
            CloneAnchor(agent.actor) if self.anchor == "clone" else None,
        )
        agent.extension = term
        return term
