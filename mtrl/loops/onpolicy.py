"""The on-policy loop: collect a rollout, update on it, log, evaluate, checkpoint.
Components (:class:`~mtrl.agents.hooks.LoopComponent`) shape the collected rewards
(``store``), run phases before RL, add to the log row and can end the run early."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mtrl.agents.hooks import LoopComponent, Step
from mtrl.agents.ppo import ActorCritic, PPOConfig, Rollout, obs_tensors, ppo_update
from mtrl.evaluation import eval_metrics
from mtrl.loops.context import TrainingContext
from mtrl.returns import gae_continuing
from mtrl.training import divergence_advice

Rows = list[dict[str, Any]]


@dataclass
class OnPolicyRun:
    """The parts of one run: the actor-critic and its optimiser, the env, the PPO
    settings, the seeded minibatch stream and the components."""

    ac: ActorCritic
    opt: torch.optim.Optimizer
    env: Any
    cfg: PPOConfig
    components: Sequence[LoopComponent]
    evaluate: Callable[[], Rows]
    generator: torch.Generator
    total_steps: int
    eval_every: int
    balanced: bool  # task-balanced minibatches (no curriculum)
    device: str = "cpu"
    steps: int = 0
    obs: Any = None


def train_on_policy(ctx: TrainingContext, r: OnPolicyRun, seed: int) -> tuple[int, Rows]:
    """Run ``r`` to its budget (or a component's early stop); returns the env steps
    taken and the last evaluation's rows."""
    rows: Rows = []
    if r.obs is None:
        r.obs, _ = r.env.reset(seed=seed + r.steps)
    if ctx.state is None:
        taken, rows = ctx.phases(r.components, r.steps)
        r.steps += taken
    next_eval = (r.steps // r.eval_every + 1) * r.eval_every
    advice = f"ppo.lr (now {r.cfg.lr})"
    with ctx.guarded(lambda: r.steps):
        while not _finished(r):
            ctx.check()  # Ctrl-C stops between rollouts, never inside one
            rollout = _collect(ctx, r)

            def diverged() -> str:
                return f"non-finite PPO loss at env step {r.steps}; " + divergence_advice(
                    ctx.run, advice
                )

            n_tasks = r.env.num_tasks
            args = (r.cfg, n_tasks, r.generator)
            losses = ppo_update(r.ac, r.opt, rollout, *args, balanced=r.balanced, diverged=diverged)
            ctx.log(_log_row(ctx, r, losses))
            if r.steps >= next_eval or _finished(r):
                rows = r.evaluate()
                ctx.log(eval_metrics(rows, r.steps))
                next_eval += r.eval_every
            ctx.periodic_checkpoint(r.steps)
    ctx.save(r.steps)
    return r.steps, rows or r.evaluate()


def _finished(r: OnPolicyRun) -> bool:
    return r.steps >= r.total_steps or any(c.finished() for c in r.components)


def _collect(ctx: TrainingContext, r: OnPolicyRun) -> Rollout:
    """``n_steps`` vector steps with the current policy; rewards as the components
    shape them, time limits bootstrapped from the final observation, then GAE."""
    cfg, dev, ac = r.cfg, r.device, r.ac
    buf: dict[str, list[torch.Tensor]] = {k: [] for k in ("o", "t", "a", "lp", "v", "r", "d")}
    for _ in range(cfg.n_steps):
        o, tid = obs_tensors(r.obs, dev)
        with torch.no_grad():
            d = ac.dist(o, tid)
            a = d.sample()
            lp, v = ac.log_prob(d, a), ac.value(o, tid)
        ran = np.asarray(r.obs["task_id"])  # the tasks this step's rewards belong to
        before, act = r.obs["observation"], ac.env_actions(a)
        r.obs, rew, term, trunc, info = r.env.step(act)
        done = np.logical_or(term, trunc)
        step = Step(before, act, rew, r.obs["observation"], term, done, ran)
        for c in r.components:
            step = c.store(step)
        rew_t = torch.as_tensor(step.reward, dtype=torch.float32, device=dev)
        truncated = np.flatnonzero(np.logical_and(trunc, ~term))
        if truncated.size:  # bootstrap time limits from the final observation
            finals = {
                "observation": np.stack([info["final_obs"][i]["observation"] for i in truncated]),
                # the finished episode's task (a curriculum may re-bind the env)
                "task_id": np.asarray(info["final_info"]["task_id"])[truncated],
            }
            fo, ftid = obs_tensors(finals, dev)
            with torch.no_grad():
                rew_t[truncated] += cfg.gamma * ac.value(fo, ftid)
        for key, value in zip(
            ["o", "t", "a", "lp", "v", "r"], (o, tid, a, lp, v, rew_t), strict=True
        ):
            buf[key].append(value)
        buf["d"].append(torch.as_tensor(done, dtype=torch.float32))
        r.steps += r.env.num_envs
        ctx.advance(r.env.num_envs)
    with torch.no_grad():
        last_v = ac.value(*obs_tensors(r.obs, dev))
    values = torch.stack(buf["v"])
    rewards, dones = torch.stack(buf["r"]), torch.stack(buf["d"]).to(dev)
    adv = gae_continuing(rewards, values, dones, last_v, cfg.gamma, cfg.gae_lambda)
    o, t, a, lp = (torch.cat(buf[k]) for k in ("o", "t", "a", "lp"))
    return Rollout(o, t, a, lp, adv.reshape(-1), (adv + values).reshape(-1))


def _log_row(ctx: TrainingContext, r: OnPolicyRun, losses: list[float]) -> dict[str, Any]:
    """The mean update loss, finished episodes' return (all and per task) and what the
    components report."""
    stats = [x for x in r.env.episode_statistics(clear=True) if x["episodes"]]
    row: dict[str, Any] = {
        "step": r.steps,
        "loss": float(np.mean(losses)),
        "env_steps_per_s": r.steps / max(ctx.elapsed(), 1e-9),
    }
    if stats:  # per task under train_return/<id>: return/<id> is the evaluation's
        row["train_return"] = float(np.mean([x["return"] for x in stats]))
        for x in stats:
            row[f"train_return/{x['task_id']}"] = x["return"]
    for c in r.components:
        row |= c.log_metrics()
    return row
