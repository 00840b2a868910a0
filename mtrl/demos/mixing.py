"""``[demos.replay]``: demonstrations in every RL batch at a share per task (RLPD's
symmetric sampling at 0.5), optionally decaying; ``[demos.sqil]``: imitation as in SQIL
(Reddy et al. 2020), demonstrations rewarded 1 and the agent's own transitions 0."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mtrl.agents.hooks import LoopComponent, Step
from mtrl.agents.replay import Batch
from mtrl.config import bounded, check_fields
from mtrl.demos.replay import DemoReplay, demo_share
from mtrl.demos.setup import DemoSetup


class DemoReplayMixer(LoopComponent):
    """Demonstrations in every RL batch at ``share`` per task, decaying to 0 over
    ``decay_steps`` env steps after ``learning_starts`` (0: a fixed share)."""

    def __init__(
        self, demos: DemoReplay, share: float, decay_steps: int, learning_starts: int
    ) -> None:
        self.demos, self.share, self.decay_steps = demos, share, decay_steps
        self.learning_starts = learning_starts

    def mix(self, batch: Batch, steps: int, generator: torch.Generator) -> Batch:
        share = demo_share(self.share, self.decay_steps, steps - self.learning_starts)
        return self.demos.mix(batch, share, generator)


class SQILRewards(LoopComponent):
    """SQIL's rewards: the agent's own transitions are stored with reward 0 (the
    demonstrations carry 1; the environment's reward is only logged)."""

    def store(self, step: Step) -> Step:
        return step._replace(reward=np.zeros_like(step.reward))


@dataclass(frozen=True)
class ReplayConfig:
    """``[demos.replay]``: the demonstrations' share of every RL batch, decaying
    linearly to 0 over ``decay_steps`` env steps after learning starts (0: fixed)."""

    share: float = bounded(0.5, ge=0.0, lt=1.0)
    decay_steps: int = bounded(0, ge=0)

    def __post_init__(self) -> None:
        check_fields(self, "demos.replay")

    def build(self, setup: DemoSetup) -> LoopComponent | None:
        if setup.replay is None:
            return None
        return DemoReplayMixer(setup.replay, self.share, self.decay_steps, setup.learning_starts)


@dataclass(frozen=True)
class SQILConfig:
    """``[demos.sqil]`` (no keys; needs ``[demos.replay]``, SQIL's share is 0.5): the
    environment's reward is only logged."""

    def build(self, setup: DemoSetup) -> LoopComponent | None:
        return SQILRewards() if setup.training else None
