"""Tasks of several families in one multi-task env: a shared, padded interface.

Each member family keeps its own observation and action spaces; the mixture's
sub-envs all show one interface, as padded multi-domain benchmarks do:

* observations are zero-padded to the widest member's size and followed by a
  one-hot of the member family, so the network always knows which family it sees;
* continuous actions are ``Box(-1, 1, (widest,))``: a sub-env takes its own leading
  slice and rescales it to its family's bounds (padding dimensions are ignored);
* discrete families mix only with discrete families of the same action count.

The padding is a wrapper (:class:`FamilyPadding`) applied where sub-envs are built,
so vector envs, curricula's task pools, SB3 and evaluation see one space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mtrl.envs.registry import make_task_env
from mtrl.errors import ConfigError
from mtrl.tasks import Task


@dataclass(frozen=True)
class MixtureLayout:
    """The shared interface of a mixture: padded sizes and the member families."""

    families: tuple[str, ...]  # member names, in env.name order
    obs_dim: int  # widest member observation
    act_dim: int | None  # widest member action; None for discrete actions
    num_actions: int | None  # discrete action count (same for every member)
    dtype: str  # observation dtype (the widest member dtype)

    @property
    def padded_obs_dim(self) -> int:
        return self.obs_dim + len(self.families)


def pad_observation(obs: np.ndarray, layout: MixtureLayout, family: int) -> np.ndarray:
    """``obs`` zero-padded to the widest member, then the family one-hot."""
    out = np.zeros(layout.padded_obs_dim, dtype=layout.dtype)
    flat = np.asarray(obs).ravel()
    out[: flat.size] = flat
    out[layout.obs_dim + family] = 1
    return out


def unpad_action(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The member's action from a shared ``[-1, 1]`` action: its leading slice, clipped
    and rescaled affinely to ``[low, high]`` (unbounded dimensions pass through)."""
    a = np.clip(np.asarray(action, dtype=np.float64)[: low.size], -1.0, 1.0)
    finite = np.isfinite(low) & np.isfinite(high)
    scaled = np.where(finite, low + (a + 1.0) * 0.5 * (high - low), a)
    return scaled.astype(low.dtype).reshape(low.shape)


class FamilyPadding(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """One member env behind the mixture's shared interface (see the module doc)."""

    def __init__(self, env: gym.Env[Any, Any], layout: MixtureLayout, family: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, layout=layout, family=family)
        gym.Wrapper.__init__(self, env)
        if not 0 <= family < len(layout.families):
            raise ValueError(f"family {family} must be in [0, {len(layout.families)})")
        base = env.observation_space
        if not isinstance(base, spaces.Box):
            raise TypeError(f"a mixture needs Box observations, got {base}")
        self.layout, self.family = layout, family
        dtype = np.dtype(layout.dtype)
        low = np.zeros(layout.padded_obs_dim, dtype=dtype)
        high = np.zeros(layout.padded_obs_dim, dtype=dtype)
        size = int(np.prod(base.shape))
        low[:size], high[:size] = base.low.ravel(), base.high.ravel()
        high[layout.obs_dim :] = 1  # family one-hot
        self.observation_space = spaces.Box(low, high, dtype=dtype)
        act = env.action_space
        if layout.act_dim is None:
            self.action_space = act
        else:
            assert isinstance(act, spaces.Box)
            self._low = act.low.astype(np.float64).ravel()
            self._high = act.high.astype(np.float64).ravel()
            self._act_dtype = act.dtype
            self.action_space = spaces.Box(-1.0, 1.0, (layout.act_dim,), dtype=np.float32)

    def _action(self, action: Any) -> Any:
        if self.layout.act_dim is None:
            return action
        inner = unpad_action(np.asarray(action), self._low, self._high)
        space = self.env.action_space
        assert isinstance(space, spaces.Box)
        return inner.astype(self._act_dtype).reshape(space.shape)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        info["family_id"] = self.family
        return pad_observation(obs, self.layout, self.family), info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(self._action(action))
        info["family_id"] = self.family
        return pad_observation(obs, self.layout, self.family), reward, terminated, truncated, info


def task_env_kwargs(task: Task, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``env_kwargs`` without the Meta-World-only options for other families' tasks."""
    if task.family == "metaworld":
        return env_kwargs
    return {k: v for k, v in env_kwargs.items() if k != "reward_function_version"}


def make_member_env(
    task: Task,
    env_kwargs: dict[str, Any],
    layout: MixtureLayout | None = None,
    family: int = 0,
) -> gym.Env[Any, Any]:
    """The env of ``task``, behind the mixture's interface when there is one."""
    env = make_task_env(task, **task_env_kwargs(task, env_kwargs))
    return env if layout is None else FamilyPadding(env, layout, family)


def mixture_layout(
    members: Sequence[str],
    tasks: Sequence[Task],
    family_ids: Sequence[int],
    env_kwargs: dict[str, Any],
) -> MixtureLayout | None:
    """The shared interface of the members (None for a single family). Builds one env
    per member to read its spaces; refuses mixtures that cannot share actions."""
    if len(members) < 2:
        return None
    obs_spaces: list[spaces.Box] = []
    act_spaces: list[gym.Space[Any]] = []
    for fam in range(len(members)):
        task = tasks[list(family_ids).index(fam)]
        env = make_task_env(task, **task_env_kwargs(task, env_kwargs))
        obs, act = env.observation_space, env.action_space
        env.close()
        if not isinstance(obs, spaces.Box):
            raise ConfigError(f"{members[fam]} observes {obs}; a mixture needs Box observations")
        obs_spaces.append(obs)
        act_spaces.append(act)
    pairs = list(zip(members, act_spaces, strict=True))
    discrete = [m for m, a in pairs if isinstance(a, spaces.Discrete)]
    boxes = [m for m, a in pairs if isinstance(a, spaces.Box)]
    others = [m for m in members if m not in discrete and m not in boxes]
    if others:
        raise ConfigError(f"{', '.join(others)}: a mixture takes Box or Discrete actions only")
    if discrete and boxes:
        raise ConfigError(
            f"env.name mixes discrete-action families ({', '.join(discrete)}) with "
            f"continuous-action ones ({', '.join(boxes)}); mix families of one kind"
        )
    dtype = np.result_type(*(s.dtype for s in obs_spaces)).name
    obs_dim = max(int(np.prod(s.shape)) for s in obs_spaces)
    if discrete:
        counts = {int(a.n) for a in act_spaces if isinstance(a, spaces.Discrete)}
        if len(counts) > 1:
            raise ConfigError(
                f"the discrete families {', '.join(discrete)} have different action counts "
                f"{sorted(counts)}; a mixture needs one count"
            )
        return MixtureLayout(tuple(members), obs_dim, None, counts.pop(), dtype)
    act_dim = max(int(np.prod(a.shape)) for a in act_spaces if isinstance(a, spaces.Box))
    return MixtureLayout(tuple(members), obs_dim, act_dim, None, dtype)
