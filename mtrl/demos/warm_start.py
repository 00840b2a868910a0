"""The phase before RL on demonstrations: the actor cloned (``[demos.bc]``), then
DAgger rounds (``[demos.dagger]``), the IBRL clone frozen, the critics fitted to the
clone (``[demos.critic_warm_start]``, AQIL's Q-imitation) and the clone evaluated:
where RL starts, logged at the env steps the rollouts took."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mtrl.agents.hooks import LoopComponent
from mtrl.agents.sac import MTSAC
from mtrl.config import bounded, check_fields
from mtrl.demos.bc import CloningConfig, bc_loss, clone
from mtrl.demos.critics_first import CriticsFirst
from mtrl.demos.dagger import KEYS, DaggerConfig, VecPolicy, aggregate, labelled_rollouts
from mtrl.demos.proposal import CloneProposal
from mtrl.demos.replay import DemoReplay
from mtrl.demos.setup import DemoSetup
from mtrl.errors import TrainingDivergedError
from mtrl.evaluation import eval_metrics

Rows = list[dict[str, Any]]
Log = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True)
class CriticWarmStartConfig:
    """``[demos.critic_warm_start]``: AQIL's Q-imitation, critic-only SAC updates on
    demonstration batches (environment rewards; targets from the cloned actor) after
    cloning, before RL; with ``online_steps``, critic-only updates go on for that many
    env steps of RL while the clone acts (:mod:`mtrl.demos.critics_first`)."""

    steps: int = bounded(1000, ge=1)
    log_every: int = bounded(100, ge=1)  # steps between q_loss rows
    online_steps: int = bounded(0, ge=0)  # env steps after learning starts, actor held

    def __post_init__(self) -> None:
        check_fields(self, "demos.critic_warm_start")

    def build(self, setup: DemoSetup) -> LoopComponent | None:
        """The online part (None without ``online_steps`` or when loading an agent)."""
        if self.online_steps == 0 or not setup.training:
            return None
        agent = setup.agent
        held = CriticsFirst(agent.extension, setup.learning_starts, self.online_steps)
        agent.extension = held
        return held


@dataclass(frozen=True)
class Phases:
    """The warm start's phases a recipe asks for (None: not run)."""

    bc: CloningConfig | None
    dagger: DaggerConfig | None
    critic: CriticWarmStartConfig | None


class WarmStart(LoopComponent):
    """``before_loop`` runs the ``phases`` a recipe asks for, in order.

    ``evaluate()`` gives the agent's evaluation rows; ``rollouts`` opens the env DAgger
    rolls the clone out in and returns it with the teacher's and the actor's policies
    (env-scale actions); ``seed``, ``batch_size`` and ``learning_starts`` are the
    recipe's."""

    def __init__(
        self,
        agent: MTSAC,
        phases: Phases,
        demos: dict[str, np.ndarray],
        replay: DemoReplay | None,
        proposal: CloneProposal | None,
        log: Log,
        evaluate: Callable[[], Rows],
        rollouts: Callable[[], tuple[Any, VecPolicy, VecPolicy]] | None,
        seed: int,
        batch_size: int,
        device: str,
        learning_starts: int = 0,
    ) -> None:
        self.agent, self.phases, self.demos, self.replay = agent, phases, demos, replay
        self.proposal, self.log, self.evaluate, self.rollouts = proposal, log, evaluate, rollouts
        self.seed, self.batch_size, self.device = seed, batch_size, device
        self.learning_starts = learning_starts

    def before_loop(self) -> tuple[int, Rows]:
        bc, steps = self.phases.bc, 0
        rows: Rows = []
        if bc is not None:
            initial = copy.deepcopy(self.agent.actor.state_dict())
            self._clone(bc, self.demos, self.log)
            if self.rollouts is not None:  # rollouts are env steps of the run
                steps, rows = self._dagger(bc, initial)
            if self.proposal is not None:
                self.proposal.freeze_clone()
        if self.phases.critic is not None and self.replay is not None:
            self._critic_warm_start(self.phases.critic, self.replay)
        if bc is not None and self.rollouts is None:  # the clone's success: where RL starts
            self.log(eval_metrics(self.evaluate(), steps))
        return steps, rows

    def explores(self, steps: int) -> bool | None:
        """With ``collect = "clone"``, the clone acts (not random actions) until
        learning starts."""
        bc = self.phases.bc
        if bc is not None and bc.collect == "clone" and steps < self.learning_starts:
            return False
        return None

    def _clone(self, bc: CloningConfig, demos: dict[str, np.ndarray], log: Log) -> None:
        """The actor cloned on ``demos`` (seeded) with ``bc.loss`` of its squashed
        Gaussian, its spread then set to ``bc.init_std`` where that is given."""
        dev, agent = self.device, self.agent
        o = torch.as_tensor(demos["obs"], dtype=torch.float32, device=dev)
        a = torch.as_tensor(demos["action"], dtype=torch.float32, device=dev)
        t = torch.as_tensor(demos["task_id"], dtype=torch.long, device=dev)

        def batch_loss(idx: torch.Tensor) -> torch.Tensor:
            mean, log_std = agent.actor(o[idx], t[idx])
            return bc_loss(bc.loss, a[idx], mean, log_std).mean()

        params = list(agent.actor.parameters())
        clone(params, batch_loss, demos["task_id"], bc, self.seed + 17, dev, log)
        if bc.init_std > 0.0:
            agent.actor.set_spread(bc.init_std)

    def _dagger(self, bc: CloningConfig, initial: dict[str, Any]) -> tuple[int, Rows]:
        """The clone evaluated (env step 0), rolled out, its states labelled by the
        teacher, and the actor re-cloned from its ``initial`` weights on everything
        labelled so far, then evaluated at the env steps the rollouts have taken."""
        assert self.rollouts is not None and self.phases.dagger is not None
        cfg = self.phases.dagger
        rows = self.evaluate()
        self.log(eval_metrics(rows, 0))
        data = {k: self.demos[k] for k in KEYS}
        steps = 0
        env, label, act = self.rollouts()
        with env:
            for r in range(1, cfg.rounds + 1):
                seed = 10_000 * r  # resets of the rollouts (the evaluation's: seed + 1)
                labelled, taken, rate = labelled_rollouts(env, act, label, cfg.episodes, seed)
                steps += taken
                data = aggregate(data, labelled)
                self.agent.actor.load_state_dict(initial)
                self._clone(bc, data, _tagged(self.log, r))
                self.log(
                    {
                        "step": steps,
                        "dagger_round": r,
                        "dagger_rows": len(data["obs"]),
                        "dagger_rollout_success": rate,
                    }
                )
                rows = self.evaluate()
                self.log(eval_metrics(rows, steps))
        return steps, rows

    def _critic_warm_start(self, cfg: CriticWarmStartConfig, replay: DemoReplay) -> None:
        """AQIL's Q-imitation: the critics fitted to the (cloned) actor on
        demonstration batches, balanced over the tasks that have demonstrations."""
        gen = torch.Generator().manual_seed(self.seed + 29)
        tasks = replay.tasks()
        per = max(1, self.batch_size // len(tasks))
        for step in range(1, cfg.steps + 1):
            loss = self.agent.critic_update(replay.sample(tasks, per, gen))
            if not math.isfinite(loss):
                raise TrainingDivergedError(
                    f"non-finite critic loss {loss} in the critic warm start at step {step}; "
                    "check the dataset's rewards"
                )
            if step % cfg.log_every == 0 or step == cfg.steps:
                self.log({"warm_step": step, "q_loss": loss})


def _tagged(log: Log, dagger_round: int) -> Log:
    """``log`` with each row marked with its DAgger round."""
    return lambda row: log({**row, "dagger_round": dagger_round})
