"""`mtrl train` for ``kind = "mtsac"``: multi-task SAC on a multi-task vector env."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from mtrl.agents.replay import TaskReplayBuffer
from mtrl.agents.reward_norm import RewardNorm, make_normalizer
from mtrl.agents.sac import MTSAC, SACConfig
from mtrl.config import bounded, check_fields
from mtrl.curriculum.baselines import build_curriculum
from mtrl.curriculum.config import CurriculumConfig
from mtrl.curriculum.methods import ContinualConfig, ContinualMethod
from mtrl.curriculum.report import continual_results
from mtrl.curriculum.schedule import Curriculum
from mtrl.demos.config import DemosConfig
from mtrl.demos.replay import DemoReplay, demo_share
from mtrl.demos.self_imitation import SelfImitation, episode_successes
from mtrl.envs.vector import (
    MultiTaskEnvConfig,
    MultiTaskVecEnv,
    eval_env_config,
    make_multitask_env,
    resolve_tasks,
)
from mtrl.errors import ConfigError, TrainingDivergedError
from mtrl.evaluation import eval_metrics, evaluate, summarize
from mtrl.seeding import seed_everything
from mtrl.training import (
    Checkpointer,
    InterruptGuard,
    capture_loop,
    check_device,
    divergence_advice,
    init_weights,
    open_run,
    progress_bar,
    restore_loop,
    resume_state,
)


@dataclass(frozen=True)
class MTSACRecipe:
    """Multi-task SAC: environment, budget, replay and the SAC update."""

    kind: Literal["mtsac"] = "mtsac"
    seed: int = bounded(0, ge=0)
    device: str = "cpu"
    threads: int = bounded(0, ge=0)
    env: MultiTaskEnvConfig = field(default_factory=MultiTaskEnvConfig)
    total_steps: int = bounded(100_000, ge=1)  # environment steps, all sub-envs together
    learning_starts: int = bounded(1_000, ge=0)  # random actions before the first update
    batch_size: int = bounded(256, ge=1)  # a multiple of the number of tasks
    updates_per_step: float = bounded(1.0, gt=0.0)  # gradient updates per vector-env step
    buffer_capacity: int = bounded(100_000, ge=1)  # transitions per task
    eval_every: int = bounded(10_000, ge=1)  # environment steps
    eval_episodes: int = bounded(3, ge=1)  # per task
    log_every: int = bounded(1_000, ge=1)
    checkpoint_every: int = bounded(50_000, ge=1)
    checkpoint_buffer: bool = True  # large buffers (MT10 at 1M) make big checkpoints
    checkpoint_env: bool = True  # sync envs' state, for exact resume (Meta-World: ~0.3 MB/env)
    keep_checkpoints: int = bounded(3, ge=0)  # newest checkpoints kept; 0 keeps all
    sac: SACConfig = field(default_factory=SACConfig)
    curriculum: CurriculumConfig | None = None
    demos: DemosConfig | None = None  # behaviour cloning on demonstrations before RL
    # "return_std": each task's rewards scaled by its running return spread (tasks of
    # several families pay on different scales; mtrl.agents.reward_norm)
    reward_norm: RewardNorm = "none"

    def curriculum_config(self) -> CurriculumConfig | None:
        """The curriculum the loop consults (None: every task, fixed sub-envs)."""
        return self.curriculum

    def continual_config(self) -> ContinualConfig | None:
        """The continual-learning method, for continual recipes."""
        return None

    def budget(self, num_tasks: int) -> int:
        """Env steps the run takes in all (at most, with ``stop_on_mastery``)."""
        return self.total_steps

    def __post_init__(self) -> None:
        check_fields(self)
        if self.demos is not None and self.demos.bc_weight and self.continual_config():
            raise ConfigError(
                "demos.bc_weight adds to the actor's loss as the continual method does; "
                "use one of them (set demos.bc_weight = 0 or drop the method)"
            )
        if self.demos is not None and self.demos.reward == "sqil" and self.reward_norm != "none":
            raise ConfigError(
                "demos.reward = 'sqil' replaces the rewards by 1 (demonstrations) and 0; "
                "reward_norm would rescale them by the environment's returns; set "
                "reward_norm = 'none'"
            )
        if self.env.autoreset_mode != "same_step":
            raise ConfigError("mtsac needs env.autoreset_mode = 'same_step'")
        if self.env.task_encoding != "index":
            raise ConfigError(
                "mtsac conditions its networks on task ids: leave env.task_encoding = 'index'"
            )


def _obs(obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(obs["observation"], dtype=np.float32), np.asarray(obs["task_id"])


class ActionScaler:
    """Maps the actor's [-1, 1] actions to the env's Box bounds."""

    def __init__(self, space: gym.Space[Any]) -> None:
        if not isinstance(space, gym.spaces.Box):
            raise ConfigError(f"SAC needs continuous (Box) actions, got {space}")
        if not np.all(np.isfinite(space.low)) or not np.all(np.isfinite(space.high)):
            raise ConfigError("SAC needs a bounded (finite) Box action space")
        self.low, self.high = space.low, space.high

    def __call__(self, a: np.ndarray) -> np.ndarray:
        return self.low + (a + 1.0) * 0.5 * (self.high - self.low)


def make_agent(recipe: MTSACRecipe, env: MultiTaskVecEnv, balanced: bool = True) -> MTSAC:
    space = env.single_observation_space
    if not isinstance(space, gym.spaces.Dict) or "observation" not in space.spaces:
        raise ConfigError("mtsac needs the multi-task env's Dict observations (task ids)")
    obs_space = space["observation"]
    act_space = env.single_action_space
    if not isinstance(act_space, gym.spaces.Box):
        raise ConfigError(f"SAC needs continuous (Box) actions; {recipe.env.label} has {act_space}")
    if balanced and recipe.batch_size % env.num_tasks:
        raise ConfigError(
            f"batch_size = {recipe.batch_size} must be a multiple of the {env.num_tasks} tasks "
            "(batches are balanced across tasks)"
        )
    obs_dim = int(np.prod(obs_space.shape or (1,)))
    act_dim = int(np.prod(act_space.shape))
    return MTSAC(recipe.sac, obs_dim, act_dim, env.num_tasks).to(recipe.device)


def load_agent(recipe: MTSACRecipe, env: MultiTaskVecEnv, state: dict[str, Any]) -> MTSAC:
    """A trained agent from a checkpoint, with its continual method (PackNet's masks
    decide which weights act for each task)."""
    agent = make_agent(recipe, env, balanced=recipe.curriculum_config() is None)
    agent.load_state_dict(state["agent"])
    continual = recipe.continual_config()
    if continual is not None:
        method = ContinualMethod(continual, agent, recipe.seed)
        if state.get("method") is not None:
            method.load_state_dict(state["method"])
        agent.extension = method
    if recipe.demos is not None and recipe.demos.clone_proposal and state.get("proposal"):
        from mtrl.demos.proposal import CloneProposal

        proposal = CloneProposal(agent, agent.extension)
        proposal.load_state_dict(state["proposal"])
        agent.extension = proposal
    return agent


def policy_fn(agent: MTSAC, env: MultiTaskVecEnv, device: str, deterministic: bool) -> Any:
    scale = ActionScaler(env.single_action_space)

    @torch.no_grad()
    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        o, tid = _obs(obs)
        a = agent.act(
            torch.as_tensor(o, device=device), torch.as_tensor(tid, device=device), deterministic
        )
        return scale(a.cpu().numpy())

    return act


def evaluate_agent(
    agent: MTSAC, recipe: MTSACRecipe, episodes: int, seed: int
) -> list[dict[str, Any]]:
    with make_multitask_env(eval_env_config(recipe.env)) as env:
        return evaluate(env, policy_fn(agent, env, recipe.device, True), episodes, seed)


def train_mtsac(
    recipe: MTSACRecipe,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = False,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """Train, evaluating every ``eval_every`` env steps; checkpoints resume the run.
    ``init_from`` (a run directory or checkpoint) gives the networks' starting weights.

    With a curriculum (``recipe.curriculum``, or a continual recipe's task sequence)
    the sub-envs run the tasks it unlocks and picks; a continual recipe's method adds
    its penalty to the update and consolidates at every task switch.
    """
    check_device(recipe.device)
    curriculum = None
    cur_cfg = recipe.curriculum_config()
    if cur_cfg is not None:  # bad curriculum settings fail before the run dir exists
        num_tasks = len(resolve_tasks(recipe.env))
        curriculum = build_curriculum(cur_cfg, recipe.env, num_tasks, recipe.seed)
    with make_multitask_env(recipe.env, scheduler=curriculum) as env:
        return _train(recipe, env, run_dir, resume, progress, curriculum, init_from)


def _behaviour_cloning(
    agent: MTSAC, demos: dict[str, np.ndarray], cfg: DemosConfig, recipe: MTSACRecipe, run: Any
) -> None:
    """The warm-start phase: the actor cloned on the demonstrations (seeded) with
    ``demos.bc_loss`` of its squashed Gaussian."""
    from mtrl.demos.bc import bc_loss, clone

    dev = recipe.device
    o = torch.as_tensor(demos["obs"], dtype=torch.float32, device=dev)
    a = torch.as_tensor(demos["action"], dtype=torch.float32, device=dev)
    t = torch.as_tensor(demos["task_id"], dtype=torch.long, device=dev)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        mean, log_std = agent.actor(o[idx], t[idx])
        return bc_loss(cfg.bc_loss, a[idx], mean, log_std).mean()

    params = list(agent.actor.parameters())
    clone(params, batch_loss, demos["task_id"], cfg, recipe.seed + 17, dev, run.log_metrics)


def _dagger(
    agent: MTSAC,
    demos: dict[str, np.ndarray],
    initial: dict[str, Any],
    teacher: str,
    recipe: MTSACRecipe,
    run: Any,
) -> tuple[int, list[dict[str, Any]]]:
    """``demos.dagger_rounds`` DAgger rounds after cloning (mtrl.demos.dagger): the
    clone is evaluated (env step 0), rolled out, its states labelled by ``teacher``, and
    the actor re-cloned from its ``initial`` weights on everything labelled so far, then
    evaluated at the env steps the rollouts have taken. Returns those steps and the last
    evaluation's rows."""
    from mtrl.demos.dagger import KEYS, aggregate, labelled_rollouts, teacher_policy

    cfg = recipe.demos
    assert cfg is not None
    rows = evaluate_agent(agent, recipe, recipe.eval_episodes, recipe.seed + 1)
    run.log_metrics(eval_metrics(rows, 0))
    data = {k: demos[k] for k in KEYS}
    steps = 0
    with make_multitask_env(eval_env_config(recipe.env)) as env:
        label = teacher_policy(teacher, env, recipe.env.label)
        act = policy_fn(agent, env, recipe.device, True)  # the current actor's
        for r in range(1, cfg.dagger_rounds + 1):
            seed = 10_000 * r  # resets of the rollouts (the evaluation's: seed + 1)
            labelled, taken, rate = labelled_rollouts(env, act, label, cfg.dagger_episodes, seed)
            steps += taken
            data = aggregate(data, labelled)
            agent.actor.load_state_dict(initial)
            tagged = SimpleNamespace(
                log_metrics=lambda row, r=r: run.log_metrics({**row, "dagger_round": r})
            )
            _behaviour_cloning(agent, data, cfg, recipe, tagged)
            run.log_metrics(
                {
                    "step": steps,
                    "dagger_round": r,
                    "dagger_rows": len(data["obs"]),
                    "dagger_rollout_success": rate,
                }
            )
            rows = evaluate_agent(agent, recipe, recipe.eval_episodes, recipe.seed + 1)
            run.log_metrics(eval_metrics(rows, steps))
    return steps, rows


def _critic_warm_start(
    agent: MTSAC, demos: DemoReplay, cfg: DemosConfig, recipe: MTSACRecipe, run: Any
) -> None:
    """AQIL's Q-imitation phase: the critics fitted to the (cloned) actor on
    demonstration batches, balanced over the tasks that have demonstrations."""
    gen = torch.Generator().manual_seed(recipe.seed + 29)
    tasks = demos.tasks()
    per = max(1, recipe.batch_size // len(tasks))
    for step in range(1, cfg.critic_steps + 1):
        loss = agent.critic_update(demos.sample(tasks, per, gen))
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"non-finite critic loss {loss} in the critic warm start at step {step}; "
                "check the dataset's rewards"
            )
        if step % cfg.log_every == 0 or step == cfg.critic_steps:
            run.log_metrics({"warm_step": step, "q_loss": loss})


def _train(
    recipe: MTSACRecipe,
    env: MultiTaskVecEnv,
    run_dir: str | Path,
    resume: bool,
    progress: bool,
    curriculum: Curriculum | None,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    seed_everything(recipe.seed)  # network initialisation is part of the seeded run
    agent = make_agent(recipe, env, balanced=curriculum is None)
    if not resume:
        init_weights(agent, init_from, "agent")  # before the run dir: a misfit fails first
    continual = recipe.continual_config()
    method = ContinualMethod(continual, agent, recipe.seed) if continual is not None else None
    if method is not None:
        agent.extension = method
    demos = None
    demo_replay = None
    dcfg = recipe.demos
    if dcfg is not None and (
        dcfg.bc_steps
        or dcfg.critic_steps
        or dcfg.replay_share
        or dcfg.bc_weight
        or dcfg.conservative_weight
        or dcfg.self_imitation
    ):
        from mtrl.demos.dataset import demo_transitions

        # a missing or mismatched dataset fails before the run directory exists
        demos = demo_transitions(dcfg.dataset, dcfg.root, env, dcfg.episodes_per_task)
        if dcfg.reward == "sqil":
            demos["reward"] = np.ones_like(demos["reward"])
        demo_replay = DemoReplay(demos, env.num_tasks, recipe.device)
    teacher = None
    if dcfg is not None and dcfg.dagger_rounds:
        from mtrl.demos.dagger import teacher_policy

        teacher = dcfg.dagger_teacher
        teacher_policy(teacher, env, recipe.env.label)  # a bad teacher fails here
    run = open_run(recipe, run_dir, resume)
    total_steps = recipe.budget(env.num_tasks)
    obs_dim = agent.actor.net.in_dim
    act_dim = agent.actor.net.out_dim // 2
    buffer = TaskReplayBuffer(
        env.num_tasks, recipe.buffer_capacity, obs_dim, act_dim, device=recipe.device
    )
    gen = torch.Generator().manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    scale = ActionScaler(env.single_action_space)
    norm = make_normalizer(recipe.reward_norm, env.num_tasks, env.num_envs, recipe.sac.gamma)
    keep_bc = None
    if demo_replay is not None and dcfg is not None and dcfg.bc_weight:
        from mtrl.demos.regulariser import DemoBCRegulariser

        per = recipe.batch_size // env.num_tasks
        keep_bc = DemoBCRegulariser(agent, demo_replay, per, dcfg.bc_loss, gen)
        agent.extension = keep_bc
    conservatism = None
    if demo_replay is not None and dcfg is not None and dcfg.conservative_weight:
        from mtrl.demos.conservative import DemoConservatism

        conservatism = DemoConservatism(
            agent,
            agent.extension,
            demo_replay,  # as many (state, perturbation) pairs as the TD batch has rows
            recipe.batch_size // (env.num_tasks * dcfg.conservative_samples),
            dcfg.conservative_weight,
            dcfg.conservative_noise,
            dcfg.conservative_samples,
            gen,
        )
        agent.extension = conservatism
    proposal = None
    if dcfg is not None and dcfg.clone_proposal:
        from mtrl.demos.proposal import CloneProposal

        proposal = CloneProposal(agent, agent.extension)
        agent.extension = proposal
    imitate = None
    if demo_replay is not None and dcfg is not None and dcfg.self_imitation:
        imitate = SelfImitation(demo_replay, env.num_envs)
    steps = 0
    task_start = 0  # env step at which the current task of a continual run began
    updates, credit, elapsed = 0, 0.0, 0.0
    last: dict[str, float] = {}
    state = resume_state(run, resume)
    obs: Any = None
    if state is not None:
        agent.load_state_dict(state["agent"])
        agent.load_optimizer_state(state["optimizers"])
        if proposal is not None:
            proposal.load_state_dict(state["proposal"])
        if imitate is not None:
            imitate.load_state_dict(state["self_imitation"])
        if state.get("buffer") is not None:
            buffer.load_state(state["buffer"])
        gen.set_state(state["generator"])
        steps = int(state["steps"])
        if curriculum is not None:
            curriculum.load_state_dict(state["curriculum"])
        if method is not None:
            method.load_state_dict(state["method"])
            task_start = int(state["task_start"])
        if norm is not None:
            norm.load_state_dict(state["reward_norm"])
        loop = state.get("loop")
        if loop is not None:  # exact continuation: RNG streams, counters, env state
            obs = restore_loop(loop, env, rng)
            updates, credit, elapsed = loop["updates"], loop["credit"], loop["elapsed"]
            last = dict(loop["last"])
    switches = int(curriculum.completed.sum()) if curriculum is not None else 0
    n = env.num_envs
    if obs is None:
        obs, _ = env.reset(seed=recipe.seed + steps)
    next_eval = (steps // recipe.eval_every + 1) * recipe.eval_every
    next_log = (steps // recipe.log_every + 1) * recipe.log_every
    final_rows: list[dict[str, Any]] = []
    ckpt = Checkpointer(
        run,
        recipe.checkpoint_every,
        total_steps,
        steps,
        lambda step: {
            "agent": agent.state_dict(),
            "optimizers": agent.optimizer_state(),
            "buffer": buffer.state() if recipe.checkpoint_buffer else None,
            "generator": gen.get_state(),
            "steps": step,
            "curriculum": curriculum.state_dict() if curriculum is not None else None,
            "method": method.state_dict() if method is not None else None,
            "task_start": task_start,
            "reward_norm": norm.state_dict() if norm is not None else None,
            "proposal": proposal.state_dict() if proposal is not None else None,
            "self_imitation": imitate.state_dict() if imitate is not None else None,
            "loop": capture_loop(
                env,
                obs,
                elapsed + time.perf_counter() - t0,
                recipe.checkpoint_env,
                rng,
                updates=updates,
                credit=credit,
                last=dict(last),
            ),
        },
        keep=recipe.keep_checkpoints or None,
    )

    def finished() -> bool:
        if steps >= total_steps:
            return True
        return bool(
            curriculum is not None and curriculum.config.stop_on_mastery and curriculum.finished
        )

    bar = progress_bar(progress, total_steps, steps, "env steps", "step", run)
    t0 = time.perf_counter()
    if state is None and demos is not None and dcfg is not None:
        if dcfg.bc_steps:
            initial = copy.deepcopy(agent.actor.state_dict())
            _behaviour_cloning(agent, demos, dcfg, recipe, run)
            if teacher is not None:  # rollouts are env steps of the run
                steps, final_rows = _dagger(agent, demos, initial, teacher, recipe, run)
                if bar is not None:
                    bar.update(steps)
            if proposal is not None:
                proposal.freeze_clone()
        if dcfg.critic_steps and demo_replay is not None:
            _critic_warm_start(agent, demo_replay, dcfg, recipe, run)
        if dcfg.bc_steps and teacher is None:  # the clone's success: where RL starts
            warm = evaluate_agent(agent, recipe, recipe.eval_episodes, recipe.seed + 1)
            run.log_metrics(eval_metrics(warm, steps))
        ckpt.next = (steps // recipe.checkpoint_every + 1) * recipe.checkpoint_every
        ckpt.save(steps)  # the warm-started agent is where a resume starts
        next_eval = (steps // recipe.eval_every + 1) * recipe.eval_every
        next_log = (steps // recipe.log_every + 1) * recipe.log_every
    guard = InterruptGuard()
    try:
        guard.__enter__()
        while not finished():
            guard.check()  # Ctrl-C stops here, where the state is whole
            o, tid = _obs(obs)
            explore = (
                steps - task_start < continual.explore_steps
                if continual is not None
                else steps < recipe.learning_starts
            )
            if explore:
                a = rng.uniform(-1.0, 1.0, size=(n, act_dim)).astype(np.float32)
            else:
                with torch.no_grad():
                    a = (
                        agent.act(
                            torch.as_tensor(o, device=recipe.device),
                            torch.as_tensor(tid, device=recipe.device),
                            deterministic=False,
                        )
                        .cpu()
                        .numpy()
                    )
            next_obs, rew, term, trunc, info = env.step(scale(a))
            real_next, _ = _obs(next_obs)
            done_any = np.logical_or(term, trunc)
            if done_any.any():
                real_next = real_next.copy()
                for i in np.flatnonzero(done_any):
                    real_next[i] = np.asarray(info["final_obs"][i]["observation"], dtype=np.float32)
            sqil = dcfg is not None and dcfg.reward == "sqil"  # the agent's own: reward 0
            stored = np.zeros_like(rew) if sqil else rew
            buffer.add(o, a, stored, real_next, term.astype(np.float32), tid)
            if imitate is not None:  # demonstrations keep their reward (1 under SQIL)
                demo_r = np.ones_like(rew) if sqil else rew
                moved = {"obs": o, "action": a, "reward": demo_r, "next_obs": real_next}
                moved["terminated"] = term.astype(np.float32)
                imitate.record(moved, tid, done_any, episode_successes(info, n))
            if norm is not None:
                norm.observe(rew, done_any, tid)
            obs = next_obs
            steps += n
            if bar is not None:
                bar.update(n)
            if curriculum is not None and method is not None and continual is not None:
                done_tasks = np.flatnonzero(curriculum.completed)
                if len(done_tasks) > switches:  # the current task's budget is spent
                    for task in done_tasks[switches:]:
                        method.end_task(int(task), buffer)
                        if not continual.keeps_buffer:
                            buffer.reset(np.array([task]))
                    if continual.reset_optimizer:
                        agent.reset_optimizers()
                    switches = len(done_tasks)
                    task_start = steps
                if switches < env.num_tasks:  # tasks complete in sequence order
                    method.progress(switches, steps - task_start, recipe.budget(1), env.num_tasks)
            if steps >= recipe.learning_starts and buffer.ready(1, any_task=curriculum is not None):
                credit += recipe.updates_per_step
                while credit >= 1.0:
                    if curriculum is None:
                        batch, present = buffer.sample(recipe.batch_size, gen), None
                    else:
                        batch = buffer.sample(recipe.batch_size, gen, filled_only=True)
                        present = len(buffer.filled_tasks())
                    if demo_replay is not None and dcfg is not None and dcfg.replay_share:
                        share = demo_share(
                            dcfg.replay_share,
                            dcfg.replay_decay_steps,
                            steps - recipe.learning_starts,
                        )
                        batch = demo_replay.mix(batch, share, gen)
                    if keep_bc is not None and dcfg is not None:
                        since = steps - recipe.learning_starts
                        keep_bc.weight = demo_share(dcfg.bc_weight, dcfg.bc_decay_steps, since)
                    if norm is not None:  # raw rewards stored; scaled as the stats are now
                        batch = batch._replace(
                            rewards=norm.normalize_tensor(batch.rewards, batch.task_ids)
                        )
                    last = agent.update(batch, present)
                    if keep_bc is not None:
                        last |= {"bc_weight": keep_bc.weight, "rl_bc_loss": keep_bc.last_loss}
                    if conservatism is not None:
                        last["conservative_penalty"] = conservatism.last_penalty
                    updates += 1
                    credit -= 1.0
                    if not all(math.isfinite(v) for v in last.values()):
                        raise TrainingDivergedError(
                            f"non-finite SAC losses {last} at env step {steps} (check the "
                            "env's rewards); "
                            + divergence_advice(run, "sac.actor_lr / sac.critic_lr")
                        )
            if steps >= next_log or finished():
                stats = env.episode_statistics(clear=True)
                done_rows = [r for r in stats if r["episodes"]]
                row: dict[str, Any] = {
                    "step": steps,
                    "updates": updates,
                    "env_steps_per_s": steps / max(elapsed + time.perf_counter() - t0, 1e-9),
                    **last,
                }
                if done_rows:
                    row["train_return"] = float(np.mean([r["return"] for r in done_rows]))
                    succ = [r["success"] for r in done_rows if not math.isnan(r["success"])]
                    if succ:
                        row["train_success"] = float(np.mean(succ))
                taken = proposal.clone_share() if proposal is not None else None
                if taken is not None:  # training actions taken from the clone
                    row["clone_share"] = taken
                if imitate is not None:  # successful episodes added to the demonstrations
                    row["imitated_episodes"] = imitate.episodes_added()
                if curriculum is not None:
                    row["tasks_unlocked"] = int(curriculum.unlocked.sum())
                    row["tasks_mastered"] = int((curriculum.mastered_at >= 0).sum())
                run.log_metrics(row)
                next_log += recipe.log_every
            if steps >= next_eval or finished():
                final_rows = evaluate_agent(agent, recipe, recipe.eval_episodes, recipe.seed + 1)
                run.log_metrics(eval_metrics(final_rows, steps))
                next_eval += recipe.eval_every
            ckpt.step(steps)
    except KeyboardInterrupt:
        ckpt.save(steps)
        raise
    finally:
        guard.__exit__(None, None, None)
        if bar is not None:
            bar.close()
    ckpt.save(steps)
    if not final_rows:
        final_rows = evaluate_agent(agent, recipe, recipe.eval_episodes, recipe.seed + 1)
    results = {
        "steps": steps,
        "updates": updates,
        "per_task": final_rows,
        "aggregate": summarize(final_rows),
        "mean_return": summarize(final_rows)["return"].get("mean"),
        "mean_success": summarize(final_rows)["success"].get("mean"),
    }
    if curriculum is not None:
        results["curriculum"] = curriculum.summary([t.label for t in env.tasks])
    if continual is not None:
        from mtrl.curriculum.continual import ContinualRecipe  # imports this module
        from mtrl.curriculum.reference import reference_aucs

        assert isinstance(recipe, ContinualRecipe)  # only continual recipes have a method
        refs = reference_aucs(recipe)  # cached single-task runs, if any
        results["continual"] = continual_results(run, recipe.budget(1), refs)
    run.write_summary(
        seed=recipe.seed,
        results=results,
        kind=recipe.kind,
        env=recipe.env.label,
        metaworld_reward_version=recipe.env.reward_version,
        **({"init_from": str(init_from)} if init_from is not None else {}),
    )
    return results
