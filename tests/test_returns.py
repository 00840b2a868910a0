"""Returns, GAE and the linear baseline against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from mtrl.returns import (
    baseline_features,
    discounted_returns,
    fit_linear_baseline,
    gae,
    normalize,
)


def test_discounted_returns_stop_at_the_end_of_each_episode() -> None:
    rewards = torch.tensor([[1.0, 1.0], [2.0, 5.0], [3.0, 7.0]])
    masks = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])  # episode 2 ended after t=1
    out = discounted_returns(rewards, masks, gamma=0.5)
    expected = torch.tensor([[1 + 0.5 * 2 + 0.25 * 3, 1 + 0.5 * 5], [2 + 0.5 * 3, 5.0], [3.0, 0.0]])
    torch.testing.assert_close(out, expected)


def test_gae_with_lambda_one_is_return_minus_value_and_lambda_zero_is_td_error() -> None:
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(6, 3, generator=g, dtype=torch.float64)
    values = torch.randn(6, 3, generator=g, dtype=torch.float64)
    masks = torch.ones(6, 3, dtype=torch.float64)
    masks[4:, 1] = 0.0
    ret = discounted_returns(rewards, masks, 0.9)
    torch.testing.assert_close(gae(rewards, values, masks, 0.9, 1.0), (ret - values) * masks)
    td = torch.zeros_like(rewards)
    for t in range(6):
        nxt = values[t + 1] * masks[t + 1] if t < 5 else torch.zeros(3, dtype=torch.float64)
        td[t] = (rewards[t] + 0.9 * nxt - values[t]) * masks[t]
    torch.testing.assert_close(gae(rewards, values, masks, 0.9, 0.0), td)


def test_linear_baseline_recovers_targets_that_are_linear_in_the_features() -> None:
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(20, 2, 5, 3, generator=g, dtype=torch.float64)  # [H, tasks, n, obs]
    feats = baseline_features(obs, 20.0)
    coef = torch.randn(2, feats.shape[-1], generator=g, dtype=torch.float64)
    targets = torch.einsum("hgnf,gf->hgn", feats, coef)  # a different fit per task
    masks = torch.ones_like(targets)
    fitted = fit_linear_baseline(feats, targets, masks, reg=1e-10)
    torch.testing.assert_close(fitted, targets, rtol=1e-6, atol=1e-6)


def test_normalize_ignores_masked_steps() -> None:
    adv = torch.tensor([[1.0, 100.0], [3.0, 100.0]])
    masks = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    out = normalize(adv, masks, dims=(0, 1))
    torch.testing.assert_close(out[:, 1], torch.zeros(2))
    assert float(out[0, 0]) == pytest.approx(-1.0, abs=1e-6)


def test_shape_mismatch_is_reported() -> None:
    with pytest.raises(ValueError, match="shapes must match"):
        discounted_returns(torch.zeros(3, 2), torch.zeros(3, 1), 0.9)
