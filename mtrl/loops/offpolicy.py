"""The off-policy loop: collect a vector step, update from replay, log, evaluate,
checkpoint. Everything optional is a :class:`~mtrl.agents.hooks.LoopComponent` that
the loop consults at named points (phases before RL, what is stored, batch mixing,
update schedules and metrics, log rows, task switches, early stops)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mtrl.agents.hooks import LoopComponent, Step
from mtrl.agents.replay import TaskReplayBuffer
from mtrl.agents.sac import MTSAC
from mtrl.errors import TrainingDivergedError
from mtrl.evaluation import eval_metrics
from mtrl.loops.context import TrainingContext
from mtrl.training import divergence_advice

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Schedule:
    """When the loop acts, updates, logs and evaluates (env steps, all sub-envs)."""

    total_steps: int
    learning_starts: int
    batch_size: int
    updates_per_step: float
    log_every: int
    eval_every: int
    partial_tasks: bool  # a curriculum: sample only tasks with data, any task ready


@dataclass
class OffPolicyRun:
    """The parts of one run: the agent, its env, replay, the seeded streams and the
    components, with the env-scaled acting and the evaluation the kind provides."""

    agent: MTSAC
    env: Any
    buffer: TaskReplayBuffer
    schedule: Schedule
    components: Sequence[LoopComponent]
    scale: Callable[[np.ndarray], np.ndarray]  # [-1, 1] actions -> the env's bounds
    evaluate: Callable[[], Rows]
    generator: torch.Generator  # batches (and what components draw)
    rng: np.random.Generator  # random actions
    device: str = "cpu"
    steps: int = 0
    updates: int = 0
    credit: float = 0.0  # fractional updates owed
    last: dict[str, float] | None = None  # the last update's numbers
    obs: Any = None


def train_off_policy(ctx: TrainingContext, r: OffPolicyRun, seed: int) -> tuple[int, Rows]:
    """Run ``r`` to its budget (or a component's early stop); returns the env steps
    taken and the last evaluation's rows."""
    s, final_rows = r.schedule, []
    if r.obs is None:
        r.obs, _ = r.env.reset(seed=seed + r.steps)
    if ctx.state is None:
        final_rows = _phases(ctx, r)
    next_log = (r.steps // s.log_every + 1) * s.log_every
    next_eval = (r.steps // s.eval_every + 1) * s.eval_every
    with ctx.guarded(lambda: r.steps):
        while not _finished(r):
            ctx.check()  # Ctrl-C stops here, where the state is whole
            _collect(r)
            ctx.advance(r.env.num_envs)
            if r.steps >= s.learning_starts and r.buffer.ready(1, any_task=s.partial_tasks):
                _update(ctx, r)
            if r.steps >= next_log or _finished(r):
                ctx.log(_log_row(ctx, r))
                next_log += s.log_every
            if r.steps >= next_eval or _finished(r):
                final_rows = r.evaluate()
                ctx.log(eval_metrics(final_rows, r.steps))
                next_eval += s.eval_every
            ctx.periodic_checkpoint(r.steps)
    ctx.save(r.steps)
    return r.steps, final_rows or r.evaluate()


def _phases(ctx: TrainingContext, r: OffPolicyRun) -> Rows:
    """Phases before RL (cloning, DAgger, warm starts); a checkpoint after any ran, so
    a resume starts where RL starts."""
    rows: Rows = []
    ran = False
    for c in r.components:
        done = c.before_loop()
        if done is not None:
            ran = True
            taken, rows = done
            r.steps += taken
            ctx.advance(taken)
    if ran:
        ctx.checkpoint_from(r.steps)
    return rows


def _finished(r: OffPolicyRun) -> bool:
    return r.steps >= r.schedule.total_steps or any(c.finished() for c in r.components)


def _obs(obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(obs["observation"], dtype=np.float32), np.asarray(obs["task_id"])


def _collect(r: OffPolicyRun) -> None:
    """One vector step: random or the actor's actions; stored (through the
    components' ``store``) with the true final observations of finished episodes."""
    o, tid = _obs(r.obs)
    votes = [v for v in (c.explores(r.steps) for c in r.components) if v is not None]
    explore = votes[0] if votes else r.steps < r.schedule.learning_starts
    if explore:
        act_dim = r.agent.actor.net.out_dim // 2
        a = r.rng.uniform(-1.0, 1.0, size=(len(o), act_dim)).astype(np.float32)
    else:
        with torch.no_grad():
            ot = torch.as_tensor(o, device=r.device)
            a = r.agent.act(ot, torch.as_tensor(tid, device=r.device), False).cpu().numpy()
    next_obs, rew, term, trunc, info = r.env.step(r.scale(a))
    real_next, _ = _obs(next_obs)
    done = np.logical_or(term, trunc)
    if done.any():
        real_next = real_next.copy()
        for i in np.flatnonzero(done):
            real_next[i] = np.asarray(info["final_obs"][i]["observation"], dtype=np.float32)
    step = Step(o, a, rew, real_next, term.astype(np.float32), done, tid)
    stored = step
    for c in r.components:
        stored = c.store(stored)
    r.buffer.add(o, a, stored.reward, real_next, stored.terminated, tid)
    for c in r.components:
        c.observe(step, info)
    r.obs = next_obs
    r.steps += r.env.num_envs
    for c in r.components:
        c.after_env_step(r.steps, r.buffer)


def _update(ctx: TrainingContext, r: OffPolicyRun) -> None:
    """The updates owed at ``updates_per_step``: a task-balanced batch, mixed by the
    components, one SAC update; non-finite losses stop the run."""
    s = r.schedule
    r.credit += s.updates_per_step
    while r.credit >= 1.0:
        present = None
        if s.partial_tasks:
            batch = r.buffer.sample(s.batch_size, r.generator, filled_only=True)
            present = len(r.buffer.filled_tasks())
        else:
            batch = r.buffer.sample(s.batch_size, r.generator)
        for c in r.components:
            batch = c.mix(batch, r.steps, r.generator)
        for c in r.components:
            c.before_update(r.steps)
        last = r.agent.update(batch, present)
        for c in r.components:
            last |= c.update_metrics()
        r.last = last
        r.updates += 1
        r.credit -= 1.0
        if not all(math.isfinite(v) for v in last.values()):
            raise TrainingDivergedError(
                f"non-finite SAC losses {last} at env step {r.steps} (check the env's "
                "rewards); " + divergence_advice(ctx.run, "sac.actor_lr / sac.critic_lr")
            )


def _log_row(ctx: TrainingContext, r: OffPolicyRun) -> dict[str, Any]:
    """Counters, the last update's numbers, finished episodes' return and success, and
    what the components report."""
    stats = [row for row in r.env.episode_statistics(clear=True) if row["episodes"]]
    row: dict[str, Any] = {
        "step": r.steps,
        "updates": r.updates,
        "env_steps_per_s": r.steps / max(ctx.elapsed(), 1e-9),
        **(r.last or {}),
    }
    if stats:
        row["train_return"] = float(np.mean([x["return"] for x in stats]))
        success = [x["success"] for x in stats if not math.isnan(x["success"])]
        if success:
            row["train_success"] = float(np.mean(success))
    for c in r.components:
        row |= c.log_metrics()
    return row
