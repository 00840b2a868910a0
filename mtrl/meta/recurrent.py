"""RL²'s recurrent policy (Duan et al. 2016): a GRU over (obs, previous action,
previous reward, episode-start flag) whose hidden state persists across the episodes
of one trial, with a Gaussian action head.

The hidden state only moves on steps that happened: after an episode ends early its
environment waits (mask 0) and the state is held, so a trial is the sequence of its
steps that happened. Training unrolls exactly that sequence (``unroll`` moves each
trial's steps that happened to the front, one call of the fused GRU; the padding
after them cannot reach them) and sampling steps the same GRU one step at a time
(``RecurrentActor``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Normal

from mtrl.meta.rl_sampler import Episodes


def input_size(obs_dim: int, act_dim: int) -> int:
    """obs, previous action, previous reward, episode-start flag."""
    return obs_dim + act_dim + 2


class RecurrentGaussianPolicy(nn.Module):
    """``N(W h_t, exp(log_std))`` over a GRU's state ``h_t``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, init_std: float = 1.0) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.hidden = obs_dim, act_dim, hidden
        self.gru = nn.GRU(input_size(obs_dim, act_dim), hidden)
        self.mean = nn.Linear(hidden, act_dim)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))

    def initial_state(self, batch: int) -> Tensor:
        """The state a trial starts from: zeros, ``[1, batch, hidden]``."""
        return torch.zeros(1, batch, self.hidden)

    def head(self, h: Tensor) -> Normal:
        """The action distribution for states ``h`` ``[..., hidden]``."""
        mean = self.mean(h)
        return Normal(mean, self.log_std.exp().expand_as(mean))

    def step(self, x: Tensor, h: Tensor) -> tuple[Normal, Tensor]:
        """One step for inputs ``x`` ``[batch, in]`` from state ``h``: the action
        distribution and the next state."""
        out, h_next = self.gru(x.unsqueeze(0), h)
        return self.head(out[0]), h_next

    def unroll(self, x: Tensor, masks: Tensor) -> Normal:
        """Action distributions ``[L, B]`` for trials ``x`` ``[L, B, in]`` started
        from zeros, the state moving only where ``masks`` is 1 (entries elsewhere are
        the head's output for a zero state; callers mask them out)."""
        index = StepIndex(masks)
        states, _ = self.gru(index.compact(x))  # padding only trails each trial's steps
        return self.head(index.expand(states, torch.Size([*x.shape[:2], self.hidden])))


class StepIndex:
    """Where each step that happened lands in its trial's packed sequence."""

    def __init__(self, masks: Tensor) -> None:
        self.valid = masks > 0
        self.lengths = self.valid.sum(0)
        pos = self.valid.long().cumsum(0) - 1
        cols = torch.arange(masks.shape[1]).expand_as(pos)
        self.pos, self.col = pos[self.valid], cols[self.valid]

    def compact(self, values: Tensor) -> Tensor:
        """``values`` ``[L, B, ...]`` with the steps that happened moved to the front
        of each column (zeros after), ``[max length, B, ...]``."""
        out = values.new_zeros(int(self.lengths.max()), *values.shape[1:])
        out[self.pos, self.col] = values[self.valid]
        return out

    def expand(self, compact: Tensor, shape: torch.Size) -> Tensor:
        """The inverse of :meth:`compact` (zeros where no step happened)."""
        out = compact.new_zeros(shape)
        out[self.valid] = compact[self.pos, self.col]
        return out


def trial_inputs(episodes: list[Episodes]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A trial's consecutive episodes ``[H, T, n, ...]`` as sequences over ``B = T*n``:
    inputs ``[K*H, B, in]`` (obs, the previous step's action and reward in the same
    episode, 1 on an episode's first step), actions, rewards and masks."""
    xs, acts, rews, masks = [], [], [], []
    for ep in episodes:
        h, t, n = ep.masks.shape
        obs = ep.obs.reshape(h, t * n, -1)
        act = ep.actions.reshape(h, t * n, -1)
        rew = ep.rewards.reshape(h, t * n)
        prev_act = torch.cat([torch.zeros_like(act[:1]), act[:-1]])
        prev_rew = torch.cat([torch.zeros_like(rew[:1]), rew[:-1]])
        first = torch.zeros(h, t * n, 1)
        first[0] = 1.0
        xs.append(torch.cat([obs, prev_act, prev_rew.unsqueeze(-1), first], dim=-1))
        acts.append(act)
        rews.append(rew)
        masks.append(ep.masks.reshape(h, t * n))
    return torch.cat(xs), torch.cat(acts), torch.cat(rews), torch.cat(masks)


class RecurrentActor:
    """The sampler's act function for a batch of trials ``[T, n]``: acts from the
    GRU's state and commits the step (state, previous action and reward) only where
    the environment was running (``observe``)."""

    def __init__(self, policy: RecurrentGaussianPolicy, tasks: int, n: int, mean: bool = False):
        self.policy, self.shape, self.mean = policy, (tasks, n), mean
        batch = tasks * n
        self.h = policy.initial_state(batch)
        self._prev_act = torch.zeros(batch, policy.act_dim)
        self._prev_rew = torch.zeros(batch, 1)
        self._first = torch.ones(batch, 1)
        self._pending: tuple[Tensor, Tensor] | None = None

    def new_episode(self, keep_memory: bool = True) -> None:
        """The next episode of the trial: its first step is flagged; the state is kept
        (RL²) or, with ``keep_memory=False``, reset as at a trial's start."""
        self._prev_act.zero_()
        self._prev_rew.zero_()
        self._first.fill_(1.0)
        if not keep_memory:
            self.h = self.policy.initial_state(self.h.shape[1])

    @torch.no_grad()
    def __call__(self, obs: Tensor) -> Tensor:
        flat = obs.reshape(-1, obs.shape[-1])
        x = torch.cat([flat, self._prev_act, self._prev_rew, self._first], dim=-1)
        dist, h_next = self.policy.step(x, self.h)
        action = dist.mean if self.mean else dist.sample()
        self._pending = (h_next, action)
        return action.reshape(*self.shape, -1)

    def observe(self, rewards: Tensor, alive: Tensor) -> None:
        """Commit the step just taken where ``alive`` ``[T, n]`` (rewards ``[T, n]``)."""
        assert self._pending is not None, "observe() follows a call"
        h_next, action = self._pending
        ran = alive.reshape(-1, 1)
        self.h = torch.where(ran.unsqueeze(0), h_next, self.h)
        self._prev_act = torch.where(ran, action, self._prev_act)
        self._prev_rew = torch.where(ran, rewards.reshape(-1, 1), self._prev_rew)
        self._first = torch.where(ran, torch.zeros_like(self._first), self._first)
        self._pending = None
