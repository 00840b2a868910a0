"""The phase before RL on demonstrations: the actor cloned (``demos.bc_steps``), then
DAgger rounds (``demos.dagger_rounds``), the IBRL clone frozen, the critics fitted to
the clone (``demos.critic_steps``, AQIL's Q-imitation) and the clone evaluated: where
RL starts, logged at the env steps the rollouts took."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from mtrl.agents.hooks import LoopComponent
from mtrl.agents.sac import MTSAC
from mtrl.demos.bc import bc_loss, clone
from mtrl.demos.config import DemosConfig
from mtrl.demos.dagger import KEYS, VecPolicy, aggregate, labelled_rollouts
from mtrl.demos.proposal import CloneProposal
from mtrl.demos.replay import DemoReplay
from mtrl.errors import TrainingDivergedError
from mtrl.evaluation import eval_metrics

Rows = list[dict[str, Any]]
Log = Callable[[Mapping[str, Any]], None]


class WarmStart(LoopComponent):
    """``before_loop`` runs the phases the demos config asks for, in order.

    ``evaluate()`` gives the agent's evaluation rows; ``rollouts`` opens the env DAgger
    rolls the clone out in and returns it with the teacher's and the actor's policies
    (env-scale actions); ``seed`` and ``batch_size`` are the recipe's."""

    def __init__(
        self,
        agent: MTSAC,
        cfg: DemosConfig,
        demos: dict[str, np.ndarray],
        replay: DemoReplay | None,
        proposal: CloneProposal | None,
        log: Log,
        evaluate: Callable[[], Rows],
        rollouts: Callable[[], tuple[Any, VecPolicy, VecPolicy]] | None,
        seed: int,
        batch_size: int,
        device: str,
    ) -> None:
        self.agent, self.cfg, self.demos, self.replay = agent, cfg, demos, replay
        self.proposal, self.log, self.evaluate, self.rollouts = proposal, log, evaluate, rollouts
        self.seed, self.batch_size, self.device = seed, batch_size, device

    def before_loop(self) -> tuple[int, Rows]:
        cfg, steps = self.cfg, 0
        rows: Rows = []
        if cfg.bc_steps:
            initial = copy.deepcopy(self.agent.actor.state_dict())
            self._clone(self.demos, self.log)
            if self.rollouts is not None:  # rollouts are env steps of the run
                steps, rows = self._dagger(initial)
            if self.proposal is not None:
                self.proposal.freeze_clone()
        if cfg.critic_steps and self.replay is not None:
            self._critic_warm_start(self.replay)
        if cfg.bc_steps and self.rollouts is None:  # the clone's success: where RL starts
            self.log(eval_metrics(self.evaluate(), steps))
        return steps, rows

    def _clone(self, demos: dict[str, np.ndarray], log: Log) -> None:
        """The actor cloned on ``demos`` (seeded) with ``demos.bc_loss`` of its
        squashed Gaussian."""
        dev, agent = self.device, self.agent
        o = torch.as_tensor(demos["obs"], dtype=torch.float32, device=dev)
        a = torch.as_tensor(demos["action"], dtype=torch.float32, device=dev)
        t = torch.as_tensor(demos["task_id"], dtype=torch.long, device=dev)

        def batch_loss(idx: torch.Tensor) -> torch.Tensor:
            mean, log_std = agent.actor(o[idx], t[idx])
            return bc_loss(self.cfg.bc_loss, a[idx], mean, log_std).mean()

        params = list(agent.actor.parameters())
        clone(params, batch_loss, demos["task_id"], self.cfg, self.seed + 17, dev, log)

    def _dagger(self, initial: dict[str, Any]) -> tuple[int, Rows]:
        """The clone evaluated (env step 0), rolled out, its states labelled by the
        teacher, and the actor re-cloned from its ``initial`` weights on everything
        labelled so far, then evaluated at the env steps the rollouts have taken."""
        assert self.rollouts is not None
        cfg = self.cfg
        rows = self.evaluate()
        self.log(eval_metrics(rows, 0))
        data = {k: self.demos[k] for k in KEYS}
        steps = 0
        env, label, act = self.rollouts()
        with env:
            for r in range(1, cfg.dagger_rounds + 1):
                seed = 10_000 * r  # resets of the rollouts (the evaluation's: seed + 1)
                labelled, taken, rate = labelled_rollouts(
                    env, act, label, cfg.dagger_episodes, seed
                )
                steps += taken
                data = aggregate(data, labelled)
                self.agent.actor.load_state_dict(initial)
                self._clone(data, _tagged(self.log, r))
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

    def _critic_warm_start(self, replay: DemoReplay) -> None:
        """AQIL's Q-imitation: the critics fitted to the (cloned) actor on
        demonstration batches, balanced over the tasks that have demonstrations."""
        gen = torch.Generator().manual_seed(self.seed + 29)
        tasks = replay.tasks()
        per = max(1, self.batch_size // len(tasks))
        for step in range(1, self.cfg.critic_steps + 1):
            loss = self.agent.critic_update(replay.sample(tasks, per, gen))
            if not math.isfinite(loss):
                raise TrainingDivergedError(
                    f"non-finite critic loss {loss} in the critic warm start at step {step}; "
                    "check the dataset's rewards"
                )
            if step % self.cfg.log_every == 0 or step == self.cfg.critic_steps:
                self.log({"warm_step": step, "q_loss": loss})


def _tagged(log: Log, dagger_round: int) -> Log:
    """``log`` with each row marked with its DAgger round."""
    return lambda row: log({**row, "dagger_round": dagger_round})
