"""stable-baselines3 integration: the multi-task vector env as an SB3 VecEnv,
task-conditioned policies, and per-task logging.

An existing SB3 script becomes multi-task by changing two lines::

    env = SB3MultiTaskVecEnv(make_multitask_env(MultiTaskEnvConfig(name="MT10")))
    model = PPO(TaskConditionedPolicy, env)          # SAC: TaskConditionedSACPolicy
    model.learn(100_000, callback=PerTaskStatsCallback())

Observations are ``{"observation": ..., "task_id": ...}``; the features extractor
concatenates the observation with a one-hot or learned embedding of the task id.
``policy_kwargs={"per_task_heads": True}`` gives hard parameter sharing: a shared
trunk and one output layer per task (action, log-std, value and Q heads).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, MlpExtractor, create_mlp
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack
from stable_baselines3.sac.policies import Actor as SACActor
from stable_baselines3.sac.policies import MultiInputPolicy as SACMultiInputPolicy
from torch import Tensor, nn

from mtrl.envs.vector import MultiTaskVecEnv
from mtrl.envs.wrappers import EPISODE_KEY
from mtrl.errors import ConfigError
from mtrl.nets import TaskLinear


def stack_frames(env: VecEnv, n_stack: int) -> VecFrameStack:
    """SB3's ``VecFrameStack`` over the adapter. SB3 stacks Box observations only, so a
    Discrete task id (``task_encoding = "index"``, the default) is refused here with the
    encodings that work, instead of SB3's TypeError from inside its stacking code."""
    space = env.observation_space
    parts = space.spaces.values() if isinstance(space, gym.spaces.Dict) else [space]
    if any(not isinstance(p, gym.spaces.Box) for p in parts):
        raise ConfigError(
            "SB3's VecFrameStack stacks Box observations only, and this env's task id is "
            "Discrete (task_encoding = 'index'); build it with task_encoding = 'onehot' "
            "(a one-hot Box beside the observation) or 'concat' (appended to it)"
        )
    return VecFrameStack(env, n_stack)


class SB3MultiTaskVecEnv(VecEnv):
    """SB3's VecEnv API over a :class:`~mtrl.envs.vector.MultiTaskVecEnv`.

    Needs same-step autoreset (SB3's convention): finished sub-envs return the first
    observation of their next episode, with the last one in
    ``info["terminal_observation"]`` and ``info["TimeLimit.truncated"]`` set. Each
    finished episode's ``info["episode"]`` carries ``r``, ``l``, ``success`` and
    ``task_id`` (SB3's ``ep_info_buffer`` reads ``r``/``l``).
    """

    def __init__(self, env: MultiTaskVecEnv) -> None:
        mode = env.metadata.get("autoreset_mode")
        if mode is not None and getattr(mode, "value", mode) != "SameStep":
            raise ConfigError(
                "SB3 expects same-step autoreset; build the env with autoreset_mode = 'same_step'"
            )
        self.env = env
        self._base: Any = env.unwrapped  # Sync/AsyncVectorEnv: get_attr, set_attr, call
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: np.ndarray | None = None
        self._seed: int | None = None

    @property
    def task_ids(self) -> np.ndarray:
        """Each sub-env's current task (a curriculum re-binds them between episodes)."""
        return self.env.task_ids

    def reset(self) -> Any:
        obs, _ = self.env.reset(seed=self._seed)
        self._seed = None
        return obs

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        self._seed = seed
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> Any:
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async()")
        obs, rewards, terms, truncs, infos = self.env.step(self._actions)
        self._actions = None
        dones = np.logical_or(terms, truncs)
        final = infos.get("final_info", {})
        final_obs = infos.get("final_obs")
        out: list[dict[str, Any]] = []
        current = self.task_ids
        finished = final.get("task_id")
        for i in range(self.num_envs):
            tid = finished[i] if dones[i] and finished is not None else current[i]
            info: dict[str, Any] = {"task_id": int(tid)}  # the finished episode's task
            if dones[i]:
                info["TimeLimit.truncated"] = bool(truncs[i] and not terms[i])
                if final_obs is not None:
                    info["terminal_observation"] = final_obs[i]
                ep, mask = final.get(EPISODE_KEY), final.get(f"_{EPISODE_KEY}")
                if ep is not None and mask is not None and mask[i]:
                    info["episode"] = {k: np.asarray(v[i]).item() for k, v in ep.items()}
            out.append(info)
        return obs, np.asarray(rewards, dtype=np.float32), dones, out

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        # gymnasium's get_attr calls methods; SB3's returns them (e.g. a bound set_task)
        values = self._base.call("get_wrapper_attr", attr_name)
        return [values[i] for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        chosen = set(self._get_indices(indices))
        if len(chosen) == self.num_envs:
            self._base.set_attr(attr_name, value)
            return
        # gymnasium sets all sub-envs at once: the others get their own values back
        current = self._base.call("get_wrapper_attr", attr_name)
        self._base.set_attr(
            attr_name, [value if i in chosen else current[i] for i in range(self.num_envs)]
        )

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        results = self._base.call(method_name, *method_args, **method_kwargs)
        return [results[i] for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: Any = None) -> list[bool]:
        wrapped = self._base.call("is_wrapped", wrapper_class)
        return [bool(wrapped[i]) for i in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """Each sub-env's frame (build the env with ``render_mode = "rgb_array"``), so
        SB3's ``render()`` and ``VecVideoRecorder`` work."""
        if self.render_mode != "rgb_array":
            raise ConfigError(
                f"get_images() needs env.render_mode = 'rgb_array' (got {self.render_mode!r})"
            )
        return list(self._base.call("render"))


def _task_ids(task: Tensor, batch: int, num_tasks: int) -> Tensor:
    if task.is_floating_point() and task.shape[-1] == num_tasks:
        return task.reshape(batch, num_tasks).argmax(dim=-1)  # SB3's one-hot form
    return task.reshape(batch).long()


class TaskConditionedExtractor(BaseFeaturesExtractor):
    """``[flatten(observation), encode(task_id)]`` with a one-hot or learned encoding, or
    none (a task-blind trunk). The task comes as ``task_id`` (Discrete) or ``task_onehot``
    (Box; give ``num_tasks`` when SB3's ``VecFrameStack`` has stacked it). With
    ``append_task_onehot`` (set by ``per_task_heads``) a one-hot of the task id follows
    in the last ``num_tasks`` columns for the heads."""

    def __init__(
        self,
        observation_space: gym.spaces.Dict,
        encoding: str = "onehot",
        embedding_dim: int = 16,
        append_task_onehot: bool = False,
        num_tasks: int | None = None,
    ) -> None:
        keys = set(getattr(observation_space, "spaces", {}))
        if "observation" not in keys or not keys & {"task_id", "task_onehot"}:
            raise ConfigError(
                f"TaskConditionedExtractor needs a Dict observation with 'observation' and "
                f"'task_id' or 'task_onehot', got keys {sorted(keys)}: build the env with "
                "task_encoding = 'index' or 'onehot'"
            )
        obs_space = observation_space["observation"]
        self.task_key = "task_id" if "task_id" in keys else "task_onehot"
        task_space = observation_space[self.task_key]
        obs_dim = int(np.prod(obs_space.shape or (1,)))
        if isinstance(task_space, gym.spaces.Discrete):
            num_tasks = int(task_space.n)
        elif num_tasks is None:  # a one-hot Box; frame-stacked ones need num_tasks
            num_tasks = int(task_space.shape[-1]) if task_space.shape else 0
        if encoding not in ("onehot", "embedding", "none"):
            raise ConfigError(f"encoding must be 'onehot', 'embedding' or 'none', got {encoding!r}")
        enc_dim = {"onehot": num_tasks, "embedding": embedding_dim, "none": 0}[encoding]
        extra = num_tasks if append_task_onehot else 0
        super().__init__(observation_space, features_dim=obs_dim + enc_dim + extra)
        self.num_tasks = num_tasks
        self.encoding = encoding
        self.append_task_onehot = append_task_onehot
        self.embedding = nn.Embedding(num_tasks, embedding_dim) if encoding == "embedding" else None

    def forward(self, observations: dict[str, Tensor]) -> Tensor:
        obs = observations["observation"].flatten(1)
        if self.task_key == "task_id":
            ids = _task_ids(observations["task_id"], obs.shape[0], self.num_tasks)
        else:  # one-hot Box; with VecFrameStack the newest frame is the last columns
            ids = observations["task_onehot"].flatten(1)[:, -self.num_tasks :].argmax(dim=-1)
        onehot = nn.functional.one_hot(ids, self.num_tasks).to(obs.dtype)
        parts = [obs]
        if self.embedding is not None:
            parts.append(self.embedding(ids))
        elif self.encoding == "onehot":
            parts.append(onehot)
        if self.append_task_onehot:
            parts.append(onehot)
        return torch.cat(parts, dim=-1)


class TaskHead(nn.Module):
    """One output layer per task for SB3 networks: the input is ``[latent, onehot(task)]``
    (the task rides along in the last ``num_tasks`` columns, see :class:`TaskPassThrough`).
    ``gain`` gives each task's weight SB3's orthogonal initialisation."""

    def __init__(
        self, latent_dim: int, num_tasks: int, out_dim: int, gain: float | None = None
    ) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.layer = TaskLinear(num_tasks, latent_dim, out_dim)
        if gain is not None:
            with torch.no_grad():
                for t in range(num_tasks):
                    nn.init.orthogonal_(self.layer.weight[t], gain=gain)
                self.layer.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        latent, onehot = x[:, : -self.num_tasks], x[:, -self.num_tasks :]
        return self.layer(latent, onehot.argmax(dim=-1))


class TaskPassThrough(nn.Module):
    """Runs ``body`` on the input without its last ``num_tasks`` columns (the task
    one-hot) and appends them to the output, for a :class:`TaskHead` after it."""

    def __init__(self, body: nn.Module, num_tasks: int) -> None:
        super().__init__()
        self.body = body
        self.num_tasks = num_tasks

    def forward(self, x: Tensor) -> Tensor:
        t = self.num_tasks
        return torch.cat([self.body(x[:, :-t]), x[:, -t:]], dim=-1)


class TaskPassThroughMlpExtractor(nn.Module):
    """SB3's :class:`MlpExtractor` on the features without the task one-hot, which is
    appended to both latents for the per-task action and value heads."""

    def __init__(
        self,
        feature_dim: int,
        net_arch: Any,
        activation_fn: type[nn.Module],
        device: torch.device | str,
        num_tasks: int,
    ) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.inner = MlpExtractor(feature_dim - num_tasks, net_arch, activation_fn, device)
        self.latent_dim_pi = self.inner.latent_dim_pi + num_tasks
        self.latent_dim_vf = self.inner.latent_dim_vf + num_tasks

    def _split(self, features: Tensor) -> tuple[Tensor, Tensor]:
        return features[:, : -self.num_tasks], features[:, -self.num_tasks :]

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: Tensor) -> Tensor:
        f, onehot = self._split(features)
        return torch.cat([self.inner.forward_actor(f), onehot], dim=-1)

    def forward_critic(self, features: Tensor) -> Tensor:
        f, onehot = self._split(features)
        return torch.cat([self.inner.forward_critic(f), onehot], dim=-1)


class TaskHeadQNetwork(nn.Module):
    """SAC's Q-network on ``[features, action]`` with a shared trunk on the features (task
    one-hot removed) and the action, then a per-task output layer."""

    def __init__(
        self,
        features_dim: int,
        action_dim: int,
        net_arch: list[int],
        activation_fn: type[nn.Module],
        num_tasks: int,
    ) -> None:
        super().__init__()
        self.features_dim = features_dim
        self.num_tasks = num_tasks
        trunk_in = features_dim - num_tasks + action_dim
        self.trunk = nn.Sequential(*create_mlp(trunk_in, -1, net_arch, activation_fn))
        self.head = TaskHead(net_arch[-1], num_tasks, 1)

    def forward(self, x: Tensor) -> Tensor:
        f, t = self.features_dim, self.num_tasks
        h = self.trunk(torch.cat([x[:, : f - t], x[:, f:]], dim=-1))
        return self.head(torch.cat([h, x[:, f - t : f]], dim=-1))


def _num_tasks(observation_space: gym.spaces.Space[Any], extractor_kwargs: dict[str, Any]) -> int:
    """Tasks of a task-conditioned Dict observation (a frame-stacked one-hot needs the
    count in ``features_extractor_kwargs``)."""
    spaces_ = observation_space.spaces if isinstance(observation_space, gym.spaces.Dict) else {}
    task_id, onehot = spaces_.get("task_id"), spaces_.get("task_onehot")
    if isinstance(task_id, gym.spaces.Discrete):
        return int(task_id.n)
    if isinstance(onehot, gym.spaces.Box) and onehot.shape:
        return int(extractor_kwargs.get("num_tasks") or onehot.shape[-1])
    raise ConfigError(
        "task-conditioned SB3 policies need the multi-task env's Dict observations with "
        "task_encoding = 'index' or 'onehot'"
    )


def _with_heads(kwargs: dict[str, Any], per_task_heads: bool) -> dict[str, Any]:
    kwargs.setdefault("features_extractor_class", TaskConditionedExtractor)
    if per_task_heads:
        if kwargs["features_extractor_class"] is not TaskConditionedExtractor:
            raise ConfigError("per_task_heads needs the TaskConditionedExtractor")
        fe = dict(kwargs.get("features_extractor_kwargs") or {})
        fe["append_task_onehot"] = True
        kwargs["features_extractor_kwargs"] = fe
    return kwargs


class TaskConditionedPolicy(MultiInputActorCriticPolicy):
    """SB3 PPO/A2C policy on ``[observation, task encoding]``; ``per_task_heads=True``
    gives each task its own action and value output layer on the shared trunk."""

    def __init__(self, *args: Any, per_task_heads: bool = False, **kwargs: Any) -> None:
        self.per_task_heads = per_task_heads  # read by _build, which super().__init__ calls
        super().__init__(*args, **_with_heads(kwargs, per_task_heads))

    def _build_mlp_extractor(self) -> None:
        if not self.per_task_heads:
            super()._build_mlp_extractor()
            return
        self.mlp_extractor = TaskPassThroughMlpExtractor(  # type: ignore[assignment]
            self.features_dim,
            self.net_arch,
            self.activation_fn,
            self.device,
            _num_tasks(self.observation_space, self.features_extractor_kwargs),
        )

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        if not self.per_task_heads:
            return
        t = _num_tasks(self.observation_space, self.features_extractor_kwargs)
        if not isinstance(self.action_net, nn.Linear):
            raise ConfigError(f"per_task_heads does not support {type(self.action_dist).__name__}")
        latent_pi = self.mlp_extractor.latent_dim_pi - t
        latent_vf = self.mlp_extractor.latent_dim_vf - t
        ortho = self.ortho_init
        self.action_net = TaskHead(
            latent_pi, t, self.action_net.out_features, 0.01 if ortho else None
        )
        self.value_net = TaskHead(  # type: ignore[assignment]
            latent_vf, t, 1, 1.0 if ortho else None
        )
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "per_task_heads": self.per_task_heads}


class TaskConditionedSACPolicy(SACMultiInputPolicy):
    """SB3 SAC policy on ``[observation, task encoding]``; ``per_task_heads=True`` gives
    each task its own mean, log-std and Q output layers on shared trunks."""

    def __init__(self, *args: Any, per_task_heads: bool = False, **kwargs: Any) -> None:
        self.per_task_heads = per_task_heads
        super().__init__(*args, **_with_heads(kwargs, per_task_heads))

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> SACActor:
        actor = super().make_actor(features_extractor)
        if not self.per_task_heads:
            return actor
        if actor.use_sde:
            raise ConfigError("per_task_heads does not support use_sde")
        kw: dict[str, Any] = self.actor_kwargs
        net_arch: list[int] = list(kw["net_arch"])
        if not net_arch:
            raise ConfigError("per_task_heads needs at least one hidden layer (net_arch)")
        t = _num_tasks(self.observation_space, self.features_extractor_kwargs)
        act_dim = int(np.prod(self.action_space.shape or (1,)))
        trunk = create_mlp(actor.features_dim - t, -1, net_arch, kw["activation_fn"])
        actor.latent_pi = TaskPassThrough(nn.Sequential(*trunk), t)  # type: ignore[assignment]
        actor.mu = TaskHead(net_arch[-1], t, act_dim)
        actor.log_std = TaskHead(net_arch[-1], t, act_dim)  # type: ignore[assignment]
        return actor.to(self.device)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> Any:
        critic = super().make_critic(features_extractor)
        if not self.per_task_heads:
            return critic
        kw: dict[str, Any] = self.critic_kwargs
        net_arch: list[int] = list(kw["net_arch"])
        if not net_arch:
            raise ConfigError("per_task_heads needs at least one hidden layer (net_arch)")
        act_dim = int(np.prod(self.action_space.shape or (1,)))
        for i in range(critic.n_critics):
            q_net = TaskHeadQNetwork(
                critic.features_extractor.features_dim,
                act_dim,
                net_arch,
                kw["activation_fn"],
                _num_tasks(self.observation_space, self.features_extractor_kwargs),
            )
            critic.add_module(f"qf{i}", q_net)
            critic.q_networks[i] = q_net
        return critic.to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "per_task_heads": self.per_task_heads}


def finished_episodes(infos: Sequence[dict[str, Any]]) -> list[tuple[int, float, float]]:
    """``(task id, return, success)`` of each episode that ended in this step's infos."""
    out = []
    for info in infos:
        ep = info.get("episode")
        if ep is not None:
            tid = int(ep.get("task_id", info.get("task_id", -1)))
            out.append((tid, float(ep["r"]), float(ep.get("success", np.nan))))
    return out


def per_task_means(episodes: dict[int, list[tuple[float, float]]]) -> dict[int, dict[str, float]]:
    """Mean return and success (NaN where the env reports none) per task id."""
    out = {}
    for tid, eps in sorted(episodes.items()):
        arr = np.asarray(eps, dtype=np.float64)
        success = arr[:, 1]
        out[tid] = {
            "return": float(arr[:, 0].mean()),
            "success": float(np.nanmean(success)) if not np.isnan(success).all() else math.nan,
        }
    return out


class CurriculumCallback(BaseCallback):
    """Reports an mtrl curriculum to SB3's logger (``curriculum/unlocked``,
    ``curriculum/mastered``, ``curriculum/steps_<id>``) and ends ``learn`` once every
    target task is mastered when ``stop_on_mastery`` is set. The curriculum itself runs
    in the env's sub-envs, which ask it for each episode's task::

        curriculum = build_curriculum(CurriculumConfig(...), env_cfg, num_tasks, seed=0)
        env = SB3MultiTaskVecEnv(make_multitask_env(env_cfg, scheduler=curriculum))
        model.learn(100_000, callback=CurriculumCallback(curriculum))
    """

    def __init__(self, curriculum: Any, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.curriculum = curriculum

    def _on_step(self) -> bool:
        cur = self.curriculum
        return not (cur.config.stop_on_mastery and cur.finished)

    def _on_rollout_end(self) -> None:
        cur = self.curriculum
        self.logger.record("curriculum/unlocked", int(cur.unlocked.sum()))
        self.logger.record("curriculum/mastered", int((cur.mastered_at >= 0).sum()))
        for tid, steps in enumerate(cur.steps.tolist()):
            self.logger.record(f"curriculum/steps_{tid}", steps)


class PerTaskStatsCallback(BaseCallback):
    """Logs per-task mean return and success of finished episodes to SB3's logger
    (``tasks/return_<id>``, ``tasks/success_<id>``) and keeps them in :attr:`history`."""

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self._episodes: dict[int, list[tuple[float, float]]] = defaultdict(list)
        self.history: list[dict[str, float]] = []

    def _on_step(self) -> bool:
        for tid, ret, success in finished_episodes(self.locals.get("infos", [])):
            self._episodes[tid].append((ret, success))
        return True

    def _on_rollout_end(self) -> None:
        if not self._episodes:
            return
        row: dict[str, float] = {"timesteps": float(self.num_timesteps)}
        for tid, means in per_task_means(self._episodes).items():
            row[f"return_{tid}"] = means["return"]
            self.logger.record(f"tasks/return_{tid}", means["return"])
            if not math.isnan(means["success"]):
                row[f"success_{tid}"] = means["success"]
                self.logger.record(f"tasks/success_{tid}", means["success"])
        self.history.append(row)
        self._episodes.clear()
