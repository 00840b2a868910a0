"""The agent's own successful episodes added to its demonstrations (self-imitation).

A clone of one demonstration per task solves an MT10 task in about half of its
episodes, each success at a goal and object position the demonstration did not show;
more demonstrations make a better clone (20 per task: 0.90 mean success against 0.46).
Success-filtered self-imitation (Oh et al. 2018's SIL; filtered behaviour cloning)
turns those successes into demonstrations: every training episode that succeeds joins
its task's demonstrations, so the cloning term, the demonstrations' share of every
batch and the conservatism on demonstration states all widen with the agent's own
experience of positions.

``[demos.self_imitation]`` (no keys; needs ``[demos.replay]``, ``[demos.regulariser]``
or ``[demos.conservative]`` to use them). Episodes are recorded per sub-env as the loop
steps; :meth:`state_dict` holds the episodes added so far and the ones in progress, so
a resumed run continues exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mtrl.agents.hooks import LoopComponent, Step
from mtrl.demos.replay import DemoReplay
from mtrl.demos.setup import DemoSetup
from mtrl.envs.wrappers import EPISODE_KEY

KEYS = ("obs", "action", "reward", "next_obs", "terminated")


def episode_successes(info: dict[str, Any], num_envs: int) -> np.ndarray:
    """Per sub-env: 1.0 where an episode ended at this step and succeeded (Meta-World's
    ``success`` was ever true), 0.0 elsewhere (also where the env reports no success)."""
    final = info.get("final_info", info)
    ep, mask = final.get(EPISODE_KEY), final.get(f"_{EPISODE_KEY}")
    out = np.zeros(num_envs)
    if ep is None or mask is None:
        return out
    success = np.nan_to_num(np.asarray(ep["success"], dtype=np.float64), nan=0.0)
    return np.where(np.asarray(mask, dtype=bool), success, 0.0)


class SelfImitation(LoopComponent):
    """Collects each sub-env's episode; a finished successful one is appended to its
    task's demonstrations in ``demos`` (with reward 1 under SQIL, ``sqil``)."""

    def __init__(self, demos: DemoReplay, num_envs: int, sqil: bool = False) -> None:
        self.demos, self.sqil = demos, sqil
        self.pending: list[dict[str, list[np.ndarray]]] = [_empty() for _ in range(num_envs)]
        self.added: list[tuple[int, dict[str, np.ndarray]]] = []  # (task, episode)

    def record(
        self,
        step: dict[str, np.ndarray],
        task_ids: np.ndarray,
        done: np.ndarray,
        success: np.ndarray,
    ) -> None:
        """One vector step: ``step`` maps each of :data:`KEYS` to a per-sub-env array."""
        for i, episode in enumerate(self.pending):
            for key in KEYS:
                episode[key].append(np.array(step[key][i], dtype=np.float32))
            if done[i]:
                if success[i] > 0.0:
                    rows = {key: np.stack(episode[key]) for key in KEYS}
                    self.demos.extend(int(task_ids[i]), rows)
                    self.added.append((int(task_ids[i]), rows))
                self.pending[i] = _empty()

    def observe(self, step: Step, info: dict[str, Any]) -> None:
        reward = np.ones_like(step.reward) if self.sqil else step.reward
        moved = {"obs": step.obs, "action": step.action, "reward": reward}
        moved |= {"next_obs": step.next_obs, "terminated": step.terminated}
        n = len(step.done)
        self.record(moved, step.task_ids, step.done, episode_successes(info, n))

    def log_metrics(self) -> dict[str, Any]:
        return {"imitated_episodes": self.episodes_added()}  # successes added so far

    def checkpoint(self) -> dict[str, Any]:
        return {"self_imitation": self.state_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["self_imitation"])

    def episodes_added(self) -> int:
        return len(self.added)

    def state_dict(self) -> dict[str, Any]:
        return {
            "pending": [{k: list(v) for k, v in ep.items()} for ep in self.pending],
            "added": list(self.added),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Re-append the saved episodes (to demonstrations freshly read from the dataset)."""
        self.pending = [{k: list(v) for k, v in ep.items()} for ep in state["pending"]]
        self.added = []
        for task, rows in state["added"]:
            self.demos.extend(task, rows)
            self.added.append((task, rows))


def _empty() -> dict[str, list[np.ndarray]]:
    return {key: [] for key in KEYS}


@dataclass(frozen=True)
class SelfImitationConfig:
    """``[demos.self_imitation]``: successful training episodes join their task's
    demonstrations (with reward 1 under ``[demos.sqil]``)."""

    def build(self, setup: DemoSetup) -> LoopComponent | None:
        if setup.replay is None:
            return None
        return SelfImitation(setup.replay, setup.num_envs, sqil=setup.sqil)
