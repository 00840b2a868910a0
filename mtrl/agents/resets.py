"""Periodic parameter resets (Nikishin et al. 2022, "The Primacy Bias in Deep RL";
D'Oro et al. 2023, scaled replay ratios): every ``every`` env steps after learning
starts, the chosen networks are re-drawn from their initial distribution and their
optimizers start afresh, while the replay buffer (and the temperatures) stay, so many
updates per env step do not lock the networks into what early data taught them.

``[resets]`` on an MT-SAC recipe; a :class:`~mtrl.agents.hooks.LoopComponent`. The new
parameters come from torch's global RNG, which checkpoints carry, and the next reset's
step is checkpointed, so a resumed run resets where the uninterrupted one did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mtrl.agents.hooks import LoopComponent
from mtrl.config import bounded, check_fields

if TYPE_CHECKING:
    from mtrl.agents.sac import MTSAC


@dataclass(frozen=True)
class ResetConfig:
    """``[resets]``: re-draw ``networks`` every ``every`` env steps after learning starts."""

    every: int = bounded(100_000, ge=1)  # env steps, all sub-envs together
    networks: Literal["critic", "actor", "both"] = "both"

    def __post_init__(self) -> None:
        check_fields(self, "resets")

    def build(self, agent: MTSAC, learning_starts: int) -> PeriodicResets:
        return PeriodicResets(agent, self, learning_starts)


class PeriodicResets(LoopComponent):
    """Resets ``agent``'s networks before the first update at or after each reset step."""

    def __init__(self, agent: MTSAC, config: ResetConfig, learning_starts: int) -> None:
        self.agent, self.config = agent, config
        self.next = learning_starts + config.every
        self.count = 0

    def before_update(self, steps: int) -> None:
        if steps < self.next:
            return
        networks = self.config.networks
        self.agent.reset_networks(actor=networks != "critic", critic=networks != "actor")
        self.count += 1
        while self.next <= steps:
            self.next += self.config.every

    def log_metrics(self) -> dict[str, Any]:
        return {"resets": self.count}

    def checkpoint(self) -> dict[str, Any]:
        return {"resets": {"next": self.next, "count": self.count}}

    def restore(self, state: dict[str, Any]) -> None:
        saved = state["resets"]
        self.next, self.count = int(saved["next"]), int(saved["count"])
