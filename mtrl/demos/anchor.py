"""The cloning term anchored to the frozen clone on the states the agent trains on
(``[demos.regulariser] anchor = "clone"``).

The cloning term on demonstrations looks only at demonstrated states. On MT1 reach
(seed 1 of docs/results/finetune-mt1.md) its loss stayed at 0.001-0.003 while the
policy's success fell from the clone's 0.86 to 0.24: the actor kept the demonstrated
actions and left the clone everywhere else. Anchored to the clone, the term pulls the
actor towards the clone's deterministic action on the states of each update's own
batch (the agent's replay rows and the demonstration rows it was mixed with), the
clone being the actor as it was when RL started, kept frozen from then on (as IBRL
keeps its clone, and as fine-tuning with a penalty to the pretrained policy does).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from mtrl.agents.replay import Batch
    from mtrl.agents.sac import Actor


class CloneAnchor:
    """A frozen copy of the actor taken at the first update, and the states of the
    last batch it was shown."""

    def __init__(self, actor: Actor) -> None:
        self.clone = copy.deepcopy(actor).requires_grad_(False)
        self.frozen = False
        self.obs: Tensor | None = None
        self.task_ids: Tensor | None = None

    def freeze(self, actor: Actor) -> None:
        """The clone := ``actor``, once (at the first update: still the cloned actor)."""
        if not self.frozen:
            self.clone.load_state_dict(actor.state_dict())
            self.frozen = True

    def see(self, batch: Batch) -> None:
        """The states the next actor update trains on."""
        self.obs, self.task_ids = batch.obs, batch.task_ids

    def targets(self) -> tuple[Tensor, Tensor, Tensor]:
        """States, the clone's deterministic actions on them, and their tasks."""
        assert self.obs is not None and self.task_ids is not None, "see() a batch first"
        with torch.no_grad():
            actions = torch.tanh(self.clone(self.obs, self.task_ids)[0])
        return self.obs, actions, self.task_ids

    def state_dict(self) -> dict[str, Any]:
        return {"clone": self.clone.state_dict(), "frozen": self.frozen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.clone.load_state_dict(state["clone"])
        self.frozen = bool(state["frozen"])
