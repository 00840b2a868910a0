"""``[demos.dagger]``: DAgger (Ross, Gordon & Bagnell 2011) in the warm-start phase:
the clone's own states, labelled by a teacher, join the demonstrations.

A behaviour-cloned MT10 actor errs on the states its small mistakes lead to, which no
demonstration shows (experiments/clone_drift.py: on the tasks it misses, its squared
action error on its own states is 10-240 times that on the demonstrated ones), and more
demonstrations of the same expert's states do not cover them. Each DAgger round rolls
the current clone out (deterministic actions) in the run's evaluation env, records every
state it visits with the teacher's action for it, and re-clones the actor from its
initial weights on the demonstrations plus every labelled state so far.

The labelled rows train the clone only: the env moved on with the clone's action, not
the label, so they are not transitions for replay or the critics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtrl.config import bounded, check_fields
from mtrl.demos.bc import normalize_actions
from mtrl.demos.self_imitation import episode_successes
from mtrl.envs.policies import expert_policy
from mtrl.errors import MtrlError

VecPolicy = Callable[[dict[str, np.ndarray]], np.ndarray]
KEYS = ("obs", "action", "task_id")  # what cloning reads


@dataclass(frozen=True)
class DaggerConfig:
    """``[demos.dagger]`` (needs ``[demos.bc]``): ``rounds`` of ``episodes`` rollouts per
    task of the clone, labelled by ``teacher`` ("expert": Meta-World's scripted experts;
    or a run directory on the same env). The rollouts count as the run's env steps."""

    rounds: int = bounded(1, ge=1)
    episodes: int = bounded(10, ge=1)
    teacher: str = "expert"

    def __post_init__(self) -> None:
        check_fields(self, "demos.dagger")


def teacher_policy(
    teacher: str, env: Any, env_label: str, load_run: Callable[[str], Any]
) -> VecPolicy:
    """``"expert"``: Meta-World's scripted expert per sub-env; otherwise a trained run
    directory (deterministic actions) trained on the same env (``env_label``), opened
    with ``load_run`` (``mtrl.load``). Env-scale actions."""
    if teacher == "expert":
        try:
            return expert_policy(env)
        except MtrlError as err:
            raise MtrlError(
                f"demos.dagger.teacher = 'expert': {err}".replace("--policy RUN_DIR", "RUN_DIR")
            ) from err
    if not Path(teacher).is_dir():
        raise MtrlError(
            f"demos.dagger.teacher = {teacher!r} is neither 'expert' nor a run directory"
        )
    trained = load_run(teacher)
    label = getattr(trained.env_config, "label", None)
    if label != env_label:
        raise MtrlError(
            f"demos.dagger.teacher {teacher!r} was trained on {label!r}; this run's env is "
            f"{env_label!r}"
        )
    return lambda obs: trained.act(obs["observation"], obs["task_id"], deterministic=True)


def labelled_rollouts(
    env: Any, act: VecPolicy, teacher: VecPolicy, episodes: int, seed: int
) -> tuple[dict[str, np.ndarray], int, float]:
    """``episodes`` episodes per sub-env of ``act`` (env-scale actions), every visited
    state paired with ``teacher``'s action in the actor's [-1, 1] scale. Returns the
    rows, the env steps taken and the rollouts' success rate (episodes that succeeded
    at any step, as self-imitation counts them; 0 where the env reports no success)."""
    low, high = env.single_action_space.low, env.single_action_space.high
    n = env.num_envs
    obs_rows: list[np.ndarray] = []
    act_rows: list[np.ndarray] = []
    tid_rows: list[np.ndarray] = []
    successes: list[np.ndarray] = []
    steps = 0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = np.zeros(n, bool)
        succeeded = np.zeros(n, bool)
        while not done.all():
            live = ~done
            obs_rows.append(np.asarray(obs["observation"])[live])
            tid_rows.append(np.asarray(obs["task_id"])[live])
            act_rows.append(normalize_actions(np.asarray(teacher(obs))[live], low, high))
            obs, _, term, trunc, info = env.step(act(obs))
            steps += int(live.sum())
            succeeded |= live & (episode_successes(info, n) > 0)
            done |= np.asarray(term, bool) | np.asarray(trunc, bool)
        successes.append(succeeded)
    rows: dict[str, np.ndarray] = {
        "obs": np.concatenate(obs_rows).astype(np.float32),
        "action": np.concatenate(act_rows).astype(np.float32),
        "task_id": np.concatenate(tid_rows).astype(np.int64),
    }
    return rows, steps, float(np.mean(successes))


def aggregate(demos: dict[str, np.ndarray], rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The cloning data (obs, action, task_id of ``demos``) followed by ``rows``."""
    return {k: np.concatenate([demos[k], rows[k].astype(demos[k].dtype)]) for k in KEYS}
