"""What a demonstration technique is built from, and the protocol of its config table.

A technique used during RL is one ``[demos.<name>]`` table: a frozen config dataclass
whose :meth:`Technique.build` returns the loop component it adds (an update term sets
itself as the agent's extension around the previous one). Its presence in a recipe
enables it; :class:`~mtrl.demos.config.DemosConfig` builds the tables present in the
order its fields are declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

from mtrl.agents.hooks import LoopComponent
from mtrl.demos.replay import DemoReplay

if TYPE_CHECKING:
    from mtrl.agents.sac import MTSAC


@dataclass(frozen=True)
class DemoSetup:
    """The agent and the demonstrations a technique works on, with the recipe's batch
    settings. ``replay`` and ``generator`` are None when a trained agent is loaded:
    then only what acting needs is built."""

    agent: MTSAC
    replay: DemoReplay | None
    generator: torch.Generator | None
    batch_size: int  # the recipe's RL batch (rows over all tasks)
    learning_starts: int  # env steps before the first update: schedules start there
    num_envs: int
    sqil: bool  # demonstrations carry reward 1 and the agent's transitions 0

    @property
    def training(self) -> bool:
        """Whether the demonstrations are at hand (training, not loading)."""
        return self.replay is not None and self.generator is not None


@runtime_checkable
class Technique(Protocol):
    """A ``[demos.<name>]`` table used during RL."""

    def build(self, setup: DemoSetup) -> LoopComponent | None:
        """The component this technique adds to the loop (None: nothing, e.g. a
        training-only term when a trained agent is loaded)."""
        ...
