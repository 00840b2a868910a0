"""The critic warm start continued online: for the first env steps of RL only the
critics update, while the cloned actor acts unchanged, so the critics learn the clone's
values on its own states (and on the variations its sampled actions try) before the
actor follows their gradients.

``[demos.critic_warm_start] online_steps``. Why: a critic fitted to the clone on
demonstrations alone knows nothing of the actions around the clone's, and an actor
that climbs its action gradient from the first update can lose most of a good clone
(reach on the success reward, seed 0: 0.96 -> 0.34 in 5k updates; held for 10k env
steps it was at 0.80 after as many actor updates and fell later: a delay, measured on
one seed, not a cure). The temperatures
are held with the actor (they tune its entropy). An
:class:`~mtrl.agents.sac.ExtensionWrapper` whose only change is
:meth:`~mtrl.agents.sac.UpdateExtension.updates_actor`; the loop sets the env step
before each update, so a resumed run holds the actor over the same updates.
"""

from __future__ import annotations

from mtrl.agents.hooks import LoopComponent
from mtrl.agents.sac import ExtensionWrapper, UpdateExtension


class CriticsFirst(ExtensionWrapper, LoopComponent):
    """Critic-only updates until ``learning_starts + online_steps`` env steps."""

    def __init__(self, inner: UpdateExtension, learning_starts: int, online_steps: int) -> None:
        super().__init__(inner)
        self.actor_from = learning_starts + online_steps
        self.holding = True

    def before_update(self, steps: int) -> None:
        self.holding = steps < self.actor_from

    def updates_actor(self) -> bool:
        return not self.holding and self.inner.updates_actor()

    def update_metrics(self) -> dict[str, float]:
        return {"actor_held": float(self.holding)}
