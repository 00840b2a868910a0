"""``mtrl.load(run_dir)``: a trained run as a policy to act with, for every recipe kind.

The policy comes from the run's newest intact checkpoint (the one ``mtrl eval`` uses),
with the recipe and env config it was trained with, so a script can step its own env::

    trained = mtrl.load("runs/nav")
    env = trained.make_env()
    obs, _ = env.reset(seed=0)
    action = trained.act(obs["observation"], obs["task_id"])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtrl.errors import MtrlError

ActFn = Callable[[dict[str, np.ndarray], bool], np.ndarray]


@dataclass
class TrainedRun:
    """A run loaded for use: ``act`` maps observations and task ids to env actions."""

    kind: str
    recipe: Any  # the recipe's config dataclass (e.g. MTSACRecipe)
    run_dir: Path
    checkpoint: Path
    model: Any  # the trained network or SB3 algorithm, for further use
    _act: ActFn | None = field(default=None, repr=False)

    @property
    def env_config(self) -> Any:
        """The run's ``[env]`` config (a MultiTaskEnvConfig), or None for sine runs."""
        return getattr(self.recipe, "env", None)

    def make_env(self) -> Any:
        """The run's multi-task env as its evaluation builds it (no curriculum)."""
        from mtrl.agents.mtsac_train import eval_env_config
        from mtrl.envs.vector import MultiTaskEnvConfig, make_multitask_env

        if not isinstance(self.env_config, MultiTaskEnvConfig):
            raise MtrlError(f"a {self.kind!r} run has no multi-task env; use .model")
        return make_multitask_env(eval_env_config(self.env_config))

    def act(self, obs: Any, task_id: Any = 0, deterministic: bool = True) -> np.ndarray:
        """Actions for one observation (``[obs_dim]``, task id an int) or a batch
        (``[n, obs_dim]``, task ids ``[n]``), in the env's action space."""
        if self._act is None:
            raise MtrlError(
                f"a {self.kind!r} run is a meta-learned regressor, not a policy: use "
                f".model (adapt it with `mtrl adapt {self.run_dir}`)"
            )
        o = np.asarray(obs, dtype=np.float32)
        single = o.ndim == 1
        batch = o[None] if single else o
        tid = np.broadcast_to(np.asarray(task_id, dtype=np.int64), (batch.shape[0],))
        tasks = getattr(self.env_config, "num_tasks", None)
        known = getattr(self.model, "num_tasks", tasks)
        if known is not None and ((tid < 0).any() or (tid >= known).any()):
            raise MtrlError(f"task_id {tid.tolist()} out of range: this run has {known} tasks")
        actions = self._act({"observation": batch, "task_id": tid.copy()}, deterministic)
        return actions[0] if single else actions


def load(run_dir: str | Path) -> TrainedRun:
    """Load a finished or interrupted run (any kind) from its newest checkpoint."""
    from mtrl.recipes import load_run

    run, kind, cfg = load_run(run_dir)
    state = run.load_checkpoint()  # the newest intact one
    assert run.loaded_checkpoint is not None
    model, act = _LOADERS[kind.name](cfg, state)
    return TrainedRun(kind.name, cfg, run.path, run.loaded_checkpoint, model, act)


def _env_for(cfg: Any) -> Any:
    from mtrl.agents.mtsac_train import eval_env_config
    from mtrl.envs.vector import make_multitask_env

    return make_multitask_env(eval_env_config(cfg.env))


def _sac(cfg: Any, state: dict[str, Any]) -> tuple[Any, ActFn]:
    from mtrl.agents.mtsac_train import load_agent, policy_fn

    env = _env_for(cfg)  # spaces and task count; closed once the agent is built
    try:
        agent = load_agent(cfg, env, state)
        fns = {d: policy_fn(agent, env, cfg.device, d) for d in (True, False)}
    finally:
        env.close()
    return agent, lambda obs, d: fns[d](obs)


def _ppo(cfg: Any, state: dict[str, Any]) -> tuple[Any, ActFn]:
    import torch

    from mtrl.agents.ppo import make_actor_critic, policy_fn

    env = _env_for(cfg)
    try:
        ac = make_actor_critic(cfg, env)
    finally:
        env.close()
    ac.load_state_dict(state["actor_critic"])
    mode = policy_fn(ac, env, cfg.device)

    @torch.no_grad()
    def act(obs: dict[str, np.ndarray], deterministic: bool) -> np.ndarray:
        if deterministic:
            return np.asarray(mode(obs))
        o = torch.as_tensor(obs["observation"], device=cfg.device)
        t = torch.as_tensor(obs["task_id"], device=cfg.device)
        return np.asarray(ac.env_actions(ac.dist(o, t).sample()))

    return ac, act


def _sb3(cfg: Any, state: dict[str, Any]) -> tuple[Any, ActFn]:
    from mtrl.agents.sb3_train import load_model

    model = load_model(state, cfg, None)

    def act(obs: dict[str, np.ndarray], deterministic: bool) -> np.ndarray:
        return np.asarray(model.predict(obs, deterministic=deterministic)[0])

    return model, act


def _maml_rl(cfg: Any, state: dict[str, Any]) -> tuple[Any, ActFn]:
    import torch

    from mtrl.meta.rl_train import build

    meta, _ = build(cfg, 1, 1)
    meta.sampler.close()
    meta.mp.load_state_dict(state["meta_policy"])
    policy = meta.mp.policy

    @torch.no_grad()
    def act(obs: dict[str, np.ndarray], deterministic: bool) -> np.ndarray:
        o = torch.as_tensor(obs["observation"], dtype=torch.float32)
        if deterministic:  # the meta-learned initial policy, before any adaptation
            return policy(o).numpy()
        return policy.distribution(dict(policy.named_parameters()), o[None]).sample()[0].numpy()

    return meta.mp, act


def _sine(cfg: Any, state: dict[str, Any]) -> tuple[Any, ActFn | None]:
    from mtrl.meta.regression import build_learner

    learner = build_learner(cfg)
    learner.load_state_dict(state["learner"])
    return learner, None


_LOADERS: dict[str, Callable[[Any, dict[str, Any]], tuple[Any, ActFn | None]]] = {
    "mtsac": _sac,
    "continual": _sac,
    "mtppo": _ppo,
    "sb3": _sb3,
    "maml-rl": _maml_rl,
    "sine": _sine,
}
