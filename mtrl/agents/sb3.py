"""stable-baselines3 integration: the multi-task vector env as an SB3 VecEnv,
task-conditioned policies, and per-task logging.

An existing SB3 script becomes multi-task by changing two lines::

    env = SB3MultiTaskVecEnv(make_multitask_env(MultiTaskEnvConfig(name="MT10")))
    model = PPO(TaskConditionedPolicy, env)          # SAC: TaskConditionedSACPolicy
    model.learn(100_000, callback=PerTaskStatsCallback())

Observations are ``{"observation": ..., "task_id": ...}``; the features extractor
concatenates the observation with a one-hot or learned embedding of the task id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.sac.policies import MultiInputPolicy as SACMultiInputPolicy
from torch import Tensor, nn

from mtrl.envs.vector import MultiTaskVecEnv
from mtrl.errors import ConfigError


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
        self.task_ids = env.task_ids
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: np.ndarray | None = None
        self._seed: int | None = None

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
        for i in range(self.num_envs):
            info: dict[str, Any] = {"task_id": int(self.task_ids[i])}
            if dones[i]:
                info["TimeLimit.truncated"] = bool(truncs[i] and not terms[i])
                if final_obs is not None:
                    info["terminal_observation"] = final_obs[i]
                ep, mask = final.get("episode"), final.get("_episode")
                if ep is not None and mask is not None and mask[i]:
                    info["episode"] = {k: np.asarray(v[i]).item() for k, v in ep.items()}
            out.append(info)
        return obs, np.asarray(rewards, dtype=np.float32), dones, out

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        values = self._base.get_attr(attr_name)
        return [values[i] for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        if indices is not None and list(self._get_indices(indices)) != list(range(self.num_envs)):
            raise NotImplementedError("set_attr on a subset of sub-envs is not supported")
        self._base.set_attr(attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        results = self._base.call(method_name, *method_args, **method_kwargs)
        return [results[i] for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


class TaskConditionedExtractor(BaseFeaturesExtractor):
    """``[flatten(observation), encode(task_id)]`` with a one-hot or learned encoding."""

    def __init__(
        self, observation_space: gym.spaces.Dict, encoding: str = "onehot", embedding_dim: int = 16
    ) -> None:
        obs_space = observation_space["observation"]
        task_space = observation_space["task_id"]
        if not isinstance(task_space, gym.spaces.Discrete):
            raise ConfigError("TaskConditionedExtractor needs task_encoding = 'index' (Discrete)")
        obs_dim = int(np.prod(obs_space.shape or (1,)))
        num_tasks = int(task_space.n)
        if encoding not in ("onehot", "embedding"):
            raise ConfigError(f"encoding must be 'onehot' or 'embedding', got {encoding!r}")
        enc_dim = num_tasks if encoding == "onehot" else embedding_dim
        super().__init__(observation_space, features_dim=obs_dim + enc_dim)
        self.num_tasks = num_tasks
        self.embedding = nn.Embedding(num_tasks, embedding_dim) if encoding == "embedding" else None

    def forward(self, observations: dict[str, Tensor]) -> Tensor:
        obs = observations["observation"].flatten(1)
        task = observations["task_id"]
        batch = obs.shape[0]
        if task.is_floating_point() and task.shape[-1] == self.num_tasks:
            ids = task.reshape(batch, self.num_tasks).argmax(dim=-1)  # SB3's one-hot form
        else:
            ids = task.reshape(batch).long()
        if self.embedding is not None:
            return torch.cat([obs, self.embedding(ids)], dim=-1)
        return torch.cat([obs, nn.functional.one_hot(ids, self.num_tasks).to(obs.dtype)], dim=-1)


class TaskConditionedPolicy(MultiInputActorCriticPolicy):
    """SB3 PPO/A2C policy on ``[observation, task encoding]``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("features_extractor_class", TaskConditionedExtractor)
        super().__init__(*args, **kwargs)


class TaskConditionedSACPolicy(SACMultiInputPolicy):
    """SB3 SAC policy on ``[observation, task encoding]``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("features_extractor_class", TaskConditionedExtractor)
        super().__init__(*args, **kwargs)


class PerTaskStatsCallback(BaseCallback):
    """Logs per-task mean return and success of finished episodes to SB3's logger
    (``tasks/return_<id>``, ``tasks/success_<id>``) and keeps them in :attr:`history`."""

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self._episodes: dict[int, list[tuple[float, float]]] = defaultdict(list)
        self.history: list[dict[str, float]] = []

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            ep = info.get("episode")
            if ep is not None:
                tid = int(ep.get("task_id", info.get("task_id", -1)))
                self._episodes[tid].append((float(ep["r"]), float(ep.get("success", np.nan))))
        return True

    def _on_rollout_end(self) -> None:
        if not self._episodes:
            return
        row: dict[str, float] = {"timesteps": float(self.num_timesteps)}
        for tid, eps in sorted(self._episodes.items()):
            arr = np.asarray(eps)
            row[f"return_{tid}"] = float(arr[:, 0].mean())
            self.logger.record(f"tasks/return_{tid}", row[f"return_{tid}"])
            if not np.isnan(arr[:, 1]).all():
                row[f"success_{tid}"] = float(np.nanmean(arr[:, 1]))
                self.logger.record(f"tasks/success_{tid}", row[f"success_{tid}"])
        self.history.append(row)
        self._episodes.clear()
