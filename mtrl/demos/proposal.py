"""The frozen clone as a second policy, as in IBRL (Hu et al. 2023, "Imitation
Bootstrapped Reinforcement Learning"): the behaviour-cloned actor is kept unchanged
beside the RL actor; in every state both propose an action and the agent takes the
one the critics value higher, when acting (training and evaluation) and when
bootstrapping the TD target. RL can then only replace the clone's action where the
critics judge the actor's better, so fine-tuning does not wreck a good clone, while
the actor is free of any cloning loss.

``[demos.proposal]`` (needs ``[demos.bc]``). An
:class:`~mtrl.agents.sac.UpdateExtension` wrapped around another one (the
default, the cloning regulariser of :mod:`mtrl.demos.regulariser`, a continual
method), whose penalties and hooks it passes through.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mtrl.agents.hooks import LoopComponent
from mtrl.agents.sac import Actor, ExtensionWrapper, UpdateExtension, pessimistic
from mtrl.demos.setup import DemoSetup

if TYPE_CHECKING:
    from mtrl.agents.sac import MTSAC


def pick(q_actor: Tensor, q_clone: Tensor, actor_action: Tensor, clone_action: Tensor) -> Tensor:
    """Per row, the clone's action where its value is strictly higher, else the actor's."""
    take_clone = (q_clone > q_actor).unsqueeze(-1)
    return torch.where(take_clone, clone_action, actor_action)


class CloneProposal(ExtensionWrapper, LoopComponent):
    """Acting and bootstrapping with the better of the actor's and the frozen clone's
    actions (the clone acts deterministically: its mean, which cloning fitted)."""

    def __init__(self, agent: MTSAC, inner: UpdateExtension) -> None:
        super().__init__(inner)
        self.agent = agent
        self.clone: Actor = copy.deepcopy(agent.actor).requires_grad_(False)
        self._taken = self._proposed = 0  # training actions (not evaluation) since last read

    def freeze_clone(self) -> None:
        """The clone := the actor now (after behaviour cloning)."""
        self.clone.load_state_dict(self.agent.actor.state_dict())

    def state_dict(self) -> dict[str, Any]:
        """The clone and the acting counts (a resumed run logs the same shares)."""
        return {"clone": self.clone.state_dict(), "counts": (self._taken, self._proposed)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.clone.load_state_dict(state["clone"])
        self._taken, self._proposed = state["counts"]

    def checkpoint(self) -> dict[str, Any]:
        return {"proposal": self.state_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["proposal"])

    def log_metrics(self) -> dict[str, Any]:
        taken = self.clone_share()  # training actions taken from the clone
        return {} if taken is None else {"clone_share": taken}

    def clone_share(self) -> float | None:
        """The share of training actions taken from the clone since the last call."""
        share = self._taken / self._proposed if self._proposed else None
        self._taken = self._proposed = 0
        return share

    def act(self, actor: Actor, obs: Tensor, task_ids: Tensor, deterministic: bool) -> Tensor:
        proposed = self.inner.act(actor, obs, task_ids, deterministic)
        cloned = torch.tanh(self.clone(obs, task_ids)[0])
        critic = self.agent.critic
        q_actor = pessimistic(critic(obs, proposed, task_ids))
        q_clone = pessimistic(critic(obs, cloned, task_ids))
        if not deterministic:
            self._taken += int((q_clone > q_actor).sum())
            self._proposed += len(q_actor)
        return pick(q_actor, q_clone, proposed, cloned)

    def next_value(self, agent: MTSAC, next_obs: Tensor, task_ids: Tensor, alpha: Tensor) -> Tensor:
        """The value of the action chosen as when acting (the higher target Q): the
        actor's soft value (its entropy term included) or the clone's Q (the clone
        acts deterministically: no entropy term)."""
        next_a, next_logp = agent.actor.sample(next_obs, task_ids)
        subset = agent.config.target_critics  # an ensemble's random subset, each drawn
        q_actor = pessimistic(agent.critic_target(next_obs, next_a, task_ids), subset)
        cloned = torch.tanh(self.clone(next_obs, task_ids)[0])
        q_clone = pessimistic(agent.critic_target(next_obs, cloned, task_ids), subset)
        return torch.where(q_clone > q_actor, q_clone, q_actor - alpha * next_logp)


@dataclass(frozen=True)
class ProposalConfig:
    """``[demos.proposal]`` (no keys): the clone kept frozen beside the RL actor; the
    agent acts with and bootstraps from the action the critics value higher. Built when
    loading too: it acts."""

    def build(self, setup: DemoSetup) -> LoopComponent | None:
        agent = setup.agent
        agent.extension = CloneProposal(agent, agent.extension)
        return agent.extension
