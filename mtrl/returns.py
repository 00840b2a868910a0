"""Returns, generalized advantage estimation and the linear feature baseline (pure).

Arrays are time-major: ``[horizon, *batch]``. ``masks[t]`` is 1 where step ``t``
happened (the episode was still running) and 0 after it ended; episodes here end by
termination or by the horizon, so nothing is bootstrapped past the last step.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check_same(**tensors: Tensor) -> None:
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"shapes must match: {shapes}")


def discounted_returns(rewards: Tensor, masks: Tensor, gamma: float) -> Tensor:
    """``G_t = r_t + gamma * G_{t+1}`` within each episode, 0 after it ended."""
    _check_same(rewards=rewards, masks=masks)
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = (rewards[t] + gamma * running) * masks[t]
        out[t] = running
    return out


def gae(rewards: Tensor, values: Tensor, masks: Tensor, gamma: float, lam: float) -> Tensor:
    """GAE(gamma, lambda) advantages (Schulman et al. 2016); ``V`` past the end is 0."""
    _check_same(rewards=rewards, values=values, masks=masks)
    horizon = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(horizon - 1, -1, -1):
        next_value = values[t + 1] * masks[t + 1] if t + 1 < horizon else torch.zeros_like(running)
        delta = rewards[t] + gamma * next_value - values[t]
        running = (
            delta + gamma * lam * running * (masks[t + 1] if t + 1 < horizon else 0.0)
        ) * masks[t]
        adv[t] = running
    return adv


def baseline_features(obs: Tensor, horizon_scale: float = 100.0) -> Tensor:
    """rllab's linear-baseline features: ``[o, o^2, t, t^2, t^3, 1]`` (obs clipped ±10).

    ``obs`` is ``[horizon, *batch, obs_dim]``; ``t`` is the step index / ``horizon_scale``.
    """
    o = obs.clamp(-10.0, 10.0)
    steps = torch.arange(obs.shape[0], dtype=obs.dtype, device=obs.device) / horizon_scale
    t = steps.view(-1, *([1] * (obs.dim() - 1))).expand(*obs.shape[:-1], 1)
    return torch.cat([o, o * o, t, t * t, t * t * t, torch.ones_like(t)], dim=-1)


def fit_linear_baseline(
    features: Tensor, returns: Tensor, masks: Tensor, reg: float = 1e-5
) -> Tensor:
    """Per-group ridge regression of returns on features; returns the fitted values.

    ``features`` ``[horizon, groups, n, F]``, ``returns``/``masks`` ``[horizon, groups, n]``:
    one least-squares fit per group (task) over its ``horizon * n`` masked samples.
    """
    if features.shape[:-1] != returns.shape or returns.shape != masks.shape:
        raise ValueError(
            f"features {tuple(features.shape)} must be returns {tuple(returns.shape)} + [F]"
        )
    x = features * masks.unsqueeze(-1)
    xt = x.permute(1, 3, 0, 2).reshape(features.shape[1], features.shape[-1], -1)  # [G, F, HN]
    y = (returns * masks).permute(1, 0, 2).reshape(features.shape[1], -1, 1)  # [G, HN, 1]
    xtx = xt @ xt.transpose(1, 2)
    eye = torch.eye(xtx.shape[-1], dtype=xtx.dtype, device=xtx.device)
    scale = reg
    for _ in range(5):  # raise the ridge until the system is well posed (rllab does the same)
        try:
            coef = torch.linalg.solve(xtx + scale * eye, xt @ y)  # [G, F, 1]
            break
        except RuntimeError:
            scale *= 10.0
    else:
        coef = torch.linalg.lstsq(xtx + scale * eye, xt @ y).solution
    values = torch.einsum("hgnf,gf->hgn", features, coef.squeeze(-1))
    return values * masks


def normalize(adv: Tensor, masks: Tensor, dims: tuple[int, ...], eps: float = 1e-8) -> Tensor:
    """Zero-mean unit-std advantages over ``dims`` (masked entries excluded and kept 0)."""
    count = masks.sum(dim=dims, keepdim=True).clamp_min(1.0)
    mean = (adv * masks).sum(dim=dims, keepdim=True) / count
    var = (((adv - mean) * masks) ** 2).sum(dim=dims, keepdim=True) / count
    return (adv - mean) / (var.sqrt() + eps) * masks


def gae_continuing(
    rewards: Tensor,
    values: Tensor,
    dones: Tensor,
    last_value: Tensor,
    gamma: float,
    lam: float,
) -> Tensor:
    """GAE over a rollout that crosses episode boundaries (PPO's buffer).

    ``dones[t]`` is 1 where the episode terminated after step ``t`` (no bootstrapping
    from the next state, which belongs to a new episode); ``last_value`` is V of the
    state after the final step. Time limits are handled by the caller, who adds
    ``gamma * V(final observation)`` to the reward of truncated steps.
    """
    _check_same(rewards=rewards, values=values, dones=dones)
    horizon = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(last_value)
    for t in range(horizon - 1, -1, -1):
        next_value = last_value if t == horizon - 1 else values[t + 1]
        nonterminal = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * nonterminal - values[t]
        running = delta + gamma * lam * nonterminal * running
        adv[t] = running
    return adv
