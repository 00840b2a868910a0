"""`mtrl train` for ``kind = "sb3"``: a stable-baselines3 algorithm (PPO, A2C, SAC) with
the task-conditioned policies of :mod:`mtrl.agents.sb3` on a multi-task vector env.

The run directory is the same as for mtrl's own agents: metrics.csv (per-task training
returns), checkpoints (the SB3 model zip inside ``step_<N>.pt``, so resuming continues
the step count), summary.json with the per-task evaluation, and `mtrl eval` / `mtrl
plot` work on it. A checkpoint is taken where a rollout starts (after the previous
update) and holds what SB3's zip leaves out: the env's state, the RNGs and SAC's replay
buffer, so a resumed run on sync envs continues exactly as the uninterrupted one.
"""

from __future__ import annotations

import copy
import io
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from stable_baselines3 import A2C, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import Logger

from mtrl.agents.sb3 import (
    PerTaskStatsCallback,
    SB3MultiTaskVecEnv,
    TaskConditionedPolicy,
    TaskConditionedSACPolicy,
    finished_episodes,
    per_task_means,
)
from mtrl.config import bounded, check_fields
from mtrl.envs.vector import MultiTaskEnvConfig, eval_env_config, make_multitask_env
from mtrl.errors import ConfigError, TrainingDivergedError
from mtrl.evaluation import evaluate, final_results
from mtrl.loading import ActFn
from mtrl.loops.context import TrainingContext
from mtrl.runs import RunDir
from mtrl.seeding import global_rng_state, set_global_rng_state
from mtrl.training import divergence_advice

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "sac": SAC}


# what the commands ask of this kind (mtrl.recipes.RecipeKind)
CURVES = ("step", ["eval_success", "eval_return", "train_return"])  # `mtrl plot`
EVALUATES = True  # a multi-task policy: `mtrl eval` and `mtrl compare` take it


@dataclass(frozen=True)
class SB3Recipe:
    """An SB3 algorithm on a task family; ``algo_kwargs`` go to its constructor."""

    kind: Literal["sb3"] = "sb3"
    algo: Literal["ppo", "a2c", "sac"] = "ppo"
    seed: int = bounded(0, ge=0)
    device: str = "cpu"
    threads: int = bounded(0, ge=0)
    env: MultiTaskEnvConfig = field(default_factory=MultiTaskEnvConfig)
    total_steps: int = bounded(100_000, ge=1)
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    encoding: Literal["onehot", "embedding", "none"] = "onehot"
    per_task_heads: bool = False
    algo_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. learning_rate, n_steps
    policy_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. log_std_init
    log_every: int = bounded(10_000, ge=1)
    checkpoint_every: int = bounded(50_000, ge=1)
    keep_checkpoints: int = bounded(3, ge=0)  # newest checkpoints kept; 0 keeps all
    eval_episodes: int = bounded(5, ge=1)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.env.autoreset_mode != "same_step" or self.env.task_encoding != "index":
            raise ConfigError(
                "sb3 needs env.autoreset_mode = 'same_step' and env.task_encoding = 'index'"
            )
        reserved = {"net_arch", "per_task_heads", "features_extractor_kwargs"}
        clash = reserved & set(self.policy_kwargs)
        if clash:
            raise ConfigError(
                f"policy_kwargs {sorted(clash)}: set net_arch, encoding and per_task_heads "
                "as top-level keys of the recipe"
            )
        for key in ("seed", "device", "policy", "env", "verbose"):
            if key in self.algo_kwargs:
                raise ConfigError(f"algo_kwargs.{key}: set it as a top-level key (or leave it)")


def build_model(recipe: SB3Recipe, env: SB3MultiTaskVecEnv) -> BaseAlgorithm:
    """The SB3 algorithm with the task-conditioned policy; bad kwargs -> ConfigError."""
    cls = ALGOS[recipe.algo]
    policy = TaskConditionedSACPolicy if recipe.algo == "sac" else TaskConditionedPolicy
    policy_kwargs = {
        **recipe.policy_kwargs,
        "net_arch": list(recipe.net_arch),
        "per_task_heads": recipe.per_task_heads,
        "features_extractor_kwargs": {"encoding": recipe.encoding},
    }
    try:
        return cls(
            policy,
            env,
            seed=recipe.seed,
            device=recipe.device,
            policy_kwargs=policy_kwargs,
            verbose=0,
            **recipe.algo_kwargs,
        )
    except TypeError as exc:
        raise ConfigError(
            f"SB3 {cls.__name__} refused the recipe's algo_kwargs/policy_kwargs: {exc}"
        ) from exc


def load_model(state: dict[str, Any], recipe: SB3Recipe, env: Any) -> BaseAlgorithm:
    """The SB3 model stored in a checkpoint's ``model_zip``; training continues from
    its last observation (``restore_model`` puts the env back where that was)."""
    zipped = io.BytesIO(state["model_zip"])
    return ALGOS[recipe.algo].load(zipped, env=env, device=recipe.device, force_reset=False)


def policy_fn(model: BaseAlgorithm) -> Any:
    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(model.predict(obs, deterministic=True)[0])

    return act


class _RunCallback(BaseCallback):
    """Writes per-task training returns to metrics.csv every ``log_every`` steps,
    checkpoints the model at the first rollout start past every ``checkpoint_every``
    steps, moves the progress bar, and on Ctrl-C stops SB3 where the next rollout
    starts (where a checkpoint resumes exactly)."""

    def __init__(self, ctx: TrainingContext, recipe: SB3Recipe) -> None:
        super().__init__()
        self.ctx, self.recipe = ctx, recipe
        self.episodes: dict[int, list[tuple[float, float]]] = defaultdict(list)
        self.next_log = 0
        self.shown = 0

    def _on_training_start(self) -> None:
        n = self.shown = self.num_timesteps
        self.next_log = (n // self.recipe.log_every + 1) * self.recipe.log_every

    def _on_step(self) -> bool:
        n = self.num_timesteps
        actions = self.locals.get("actions")
        if actions is not None and not np.all(np.isfinite(np.asarray(actions, dtype=float))):
            raise TrainingDivergedError(diverged_message(n, self.ctx.run))
        self.ctx.advance(n - self.shown)
        self.shown = n
        for tid, ret, success in finished_episodes(self.locals.get("infos", [])):
            self.episodes[tid].append((ret, success))
        if n >= self.next_log:
            row: dict[str, Any] = {"step": n}
            tasks = per_task_means(self.episodes)
            self.episodes.clear()
            if tasks:
                row["train_return"] = float(np.mean([t["return"] for t in tasks.values()]))
                for tid, t in tasks.items():  # return/<id> is the evaluation's
                    row[f"train_return/{tid}"] = t["return"]
                    if not math.isnan(t["success"]):
                        row[f"train_success/{tid}"] = t["success"]
            self.ctx.log(row)
            self.next_log += self.recipe.log_every
        return True

    def _on_rollout_start(self) -> None:
        # the previous rollout's update is done and the next not begun: what a resume
        # starts from. Ctrl-C raises here; the guard around `learn` checkpoints.
        self.ctx.check()
        self.ctx.periodic_checkpoint(self.num_timesteps)


def diverged_message(steps: int, run: RunDir) -> str:
    return (
        f"the SB3 policy produced NaN outputs at step {steps} (check the env's rewards); "
        + divergence_advice(run, "algo_kwargs.learning_rate")
    )


def init_sb3_weights(model: BaseAlgorithm, source: str | Path) -> None:
    """The policy weights of an SB3 run's checkpoint, loaded into ``model``."""
    from mtrl.training import load_init_state

    state = load_init_state(source)
    if "model_zip" not in state:
        raise ConfigError(f"--init-from {str(source)!r} is not a checkpoint of an sb3 run")
    from stable_baselines3.common.save_util import load_from_zip_file

    _, params, _ = load_from_zip_file(io.BytesIO(state["model_zip"]))
    try:
        model.set_parameters(params or {}, exact_match=True)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"--init-from {str(source)!r}: its policy does not fit this recipe's ({exc})"
        ) from None


def model_state(model: BaseAlgorithm, steps: int, callback: _RunCallback) -> dict[str, Any]:
    """A checkpoint: SB3's own zip of the model (``model.save``), the step count and
    what the zip leaves out (SAC's replay buffer, the env's state, the RNGs, the
    episodes not yet logged)."""
    buf = io.BytesIO()
    model.save(buf)
    state: dict[str, Any] = {"model_zip": buf.getvalue(), "steps": steps}
    replay = getattr(model, "replay_buffer", None)
    if replay is not None:
        rb = io.BytesIO()
        model.save_replay_buffer(rb)  # type: ignore[attr-defined]
        state["replay_buffer"] = rb.getvalue()
    env = model.get_env()
    state["loop"] = {
        "global_rng": global_rng_state(),
        "action_rng": copy.deepcopy(model.action_space.np_random.bit_generator.state),
        "env": env.env.state() if isinstance(env, SB3MultiTaskVecEnv) else None,
        "episodes": {k: list(v) for k, v in callback.episodes.items()},
    }
    return state


def restore_model(state: dict[str, Any], model: BaseAlgorithm, callback: _RunCallback) -> None:
    """Put back what :func:`model_state` saved beside the zip (after ``load_model``,
    which re-seeds the RNGs)."""
    if "replay_buffer" in state:
        model.load_replay_buffer(io.BytesIO(state["replay_buffer"]))  # type: ignore[attr-defined]
    loop = state.get("loop")
    if loop is None:  # an older checkpoint: the env restarts, the RNGs as seeded
        return
    env = model.get_env()
    if loop["env"] is not None and isinstance(env, SB3MultiTaskVecEnv):
        env.env.load_state(loop["env"])
    set_global_rng_state(loop["global_rng"])
    model.action_space.np_random.bit_generator.state = loop["action_rng"]
    callback.episodes.update({int(k): list(v) for k, v in loop["episodes"].items()})


def train_sb3(
    recipe: SB3Recipe,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = False,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """Train; Ctrl-C and every ``checkpoint_every`` steps save a resumable checkpoint.
    ``init_from`` (a run directory or checkpoint of an SB3 run) gives the policy's
    starting weights."""
    env = SB3MultiTaskVecEnv(make_multitask_env(recipe.env))
    try:
        model = build_model(recipe, env)  # bad kwargs fail before the run dir exists
        if init_from is not None and not resume:
            init_sb3_weights(model, init_from)
        ctx = TrainingContext(recipe, run_dir, resume)
        run_callback = _RunCallback(ctx, recipe)
        if ctx.state is not None:
            model = load_model(ctx.state, recipe, env)
            restore_model(ctx.state, model, run_callback)
        ctx.start(
            lambda step: model_state(model, step, run_callback),
            total=recipe.total_steps,
            step=model.num_timesteps,
            progress=progress,
        )
        callback = CallbackList([PerTaskStatsCallback(), run_callback])
        if model.tensorboard_log is None:  # else SB3 makes an empty /tmp/SB3-<time> per learn()
            model.set_logger(Logger(folder=None, output_formats=[]))
        remaining = recipe.total_steps - model.num_timesteps
        with ctx.guarded(lambda: model.num_timesteps):  # Ctrl-C: a checkpoint, then stop
            try:
                if remaining > 0:
                    model.learn(remaining, callback=callback, reset_num_timesteps=False)
                ctx.check()
            except ValueError as exc:  # torch.distributions' argument check on NaN outputs
                # (off once torch.compile has run in the process: the callback's check covers it)
                if "invalid values" not in str(exc):
                    raise
                raise TrainingDivergedError(diverged_message(model.num_timesteps, ctx.run)) from exc
        ctx.save(model.num_timesteps)
        model.save(ctx.run.path / "model.zip")  # what SB3's own `PPO.load` / `SAC.load` open
    finally:
        env.close()
    rows = evaluate_model(model, recipe, recipe.eval_episodes, recipe.seed + 1)
    results = {"steps": model.num_timesteps, **final_results(rows)}
    agg = results["aggregate"]
    ctx.log(
        {
            "step": model.num_timesteps,
            "eval_return": agg["return"].get("mean", math.nan),
            "eval_success": agg["success"].get("mean", math.nan),
        }
    )
    ctx.finish(results, kind=recipe.kind, env=recipe.env.label)
    return results


def evaluate_model(
    model: BaseAlgorithm, recipe: SB3Recipe, episodes: int, seed: int
) -> list[dict[str, Any]]:
    with make_multitask_env(eval_env_config(recipe.env)) as env:
        return evaluate(env, policy_fn(model), episodes, seed)


def load_policy(cfg: Any, state: dict[str, Any]) -> tuple[Any, ActFn]:
    """The trained model and its act function, for ``mtrl.load``."""
    model = load_model(state, cfg, None)

    def act(obs: dict[str, np.ndarray], deterministic: bool) -> np.ndarray:
        return np.asarray(model.predict(obs, deterministic=deterministic)[0])

    return model, act
