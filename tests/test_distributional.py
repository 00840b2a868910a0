"""The HL-Gauss categorical critic: targets, values and losses against slow
references, its settings checked before work, and that it fits returns of any scale."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from recipes import assert_short_run_is_seeded

from mtrl.agents.distributional import (
    HLGaussConfig,
    classification_loss,
    expected_value,
    hl_gauss_probs,
)
from mtrl.agents.replay import Batch
from mtrl.agents.sac import MTSAC, Critic, SACConfig
from mtrl.config import from_dict
from mtrl.errors import ConfigError
from mtrl.kinds.mtsac import MTSACRecipe
from mtrl.nets import NetConfig


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_hl_gauss_probabilities_are_the_gaussians_mass_per_bin() -> None:
    cfg = HLGaussConfig(bins=5, v_min=0.0, v_max=10.0, sigma=0.75)
    edges, sigma = cfg.edges(), 0.75 * cfg.width
    targets = torch.tensor([0.0, 3.3, 7.0, 10.0, -4.0, 25.0])
    got = hl_gauss_probs(targets, edges, sigma)
    for row, y in enumerate(targets.tolist()):  # a slow reference with math.erf
        y = min(max(y, 0.0), 10.0)
        total = _phi((10.0 - y) / sigma) - _phi((0.0 - y) / sigma)
        for i in range(5):
            lo, hi = 2.0 * i, 2.0 * (i + 1)
            want = (_phi((hi - y) / sigma) - _phi((lo - y) / sigma)) / total
            assert got[row, i].item() == pytest.approx(want, abs=1e-6)
    torch.testing.assert_close(got.sum(-1), torch.ones(6))
    # out of range targets are the range's ends
    torch.testing.assert_close(got[4], got[0])
    torch.testing.assert_close(got[5], got[3])
    # a narrow Gaussian at a bin's centre is that bin
    sharp = hl_gauss_probs(torch.tensor([5.0]), edges, 1e-3)
    torch.testing.assert_close(sharp, torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]]))


def test_values_are_expectations_and_the_loss_a_cross_entropy() -> None:
    centres = HLGaussConfig(bins=4, v_min=0.0, v_max=8.0).centres()
    assert centres.tolist() == [1.0, 3.0, 5.0, 7.0]
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [50.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(expected_value(logits, centres), torch.tensor([4.0, 1.0]))
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 0.0, 0.0]])
    by_hand = [
        -sum(0.1 * 0.0 + p * math.log(0.25) for p in [0.1, 0.2, 0.3, 0.4]),
        -(50.0 - math.log(math.exp(50.0) + 3.0)),
    ]
    torch.testing.assert_close(
        classification_loss(logits, probs), torch.tensor(by_hand), rtol=1e-5, atol=1e-6
    )


def test_a_categorical_ensembles_td_loss_sums_each_critics_cross_entropy() -> None:
    hl = HLGaussConfig(bins=11, v_min=-5.0, v_max=5.0)
    critic = Critic(NetConfig(hidden=[8]), 3, 2, num_tasks=2, count=3, hl_gauss=hl)
    obs, act, tid = torch.randn(6, 3), torch.randn(6, 2), torch.tensor([0, 0, 0, 1, 1, 1])
    target = torch.tensor([-7.0, -1.2, 0.0, 0.4, 3.9, 8.0])
    got = critic.td_errors(obs, act, tid, target)
    x = torch.cat([obs, act], -1)
    probs = hl_gauss_probs(target, hl.edges(), hl.sigma * hl.width)
    slow = torch.zeros(6)
    for net in critic.nets:  # a slow loop over critics and rows
        logits = net(x, tid)
        for i in range(6):
            slow[i] += -(probs[i] * torch.log_softmax(logits[i], -1)).sum()
    torch.testing.assert_close(got, slow)
    values = critic(obs, act, tid)
    assert len(values) == 3 and all(v.shape == (6,) for v in values)
    assert all(bool(((v >= -5.0) & (v <= 5.0)).all()) for v in values)
    # the bins are made from the config, not stored: twin-critic names as before
    assert {k.split(".")[0] for k in critic.state_dict()} == {"q1", "q2", "q3"}


def test_hl_gauss_settings_are_checked_before_any_work() -> None:
    with pytest.raises(ConfigError, match=r"v_min = 5.0 must be below v_max = 5.0"):
        from_dict(MTSACRecipe, {"kind": "mtsac", "sac": {"hl_gauss": {"v_min": 5, "v_max": 5}}})
    with pytest.raises(ConfigError, match=r"sac\.hl_gauss\.bins"):
        from_dict(MTSACRecipe, {"kind": "mtsac", "sac": {"hl_gauss": {"bins": 1}}})
    with pytest.raises(ConfigError, match=r"sac\.hl_gauss\.sigma"):
        from_dict(MTSACRecipe, {"kind": "mtsac", "sac": {"hl_gauss": {"sigma": 0}}})


def _relative_fit_error(scale: float) -> float:
    """Mean absolute error, as a share of the returns' range, of a categorical critic
    fitted to one-step returns (terminal transitions) in ``[-2, 2] * scale``."""
    torch.manual_seed(0)
    hl = HLGaussConfig(bins=51, v_min=-2.0 * scale, v_max=2.0 * scale)
    cfg = SACConfig(
        actor=NetConfig(hidden=[32]), critic=NetConfig(hidden=[64, 64]), hl_gauss=hl,
        critic_lr=3e-3,
    )  # fmt: skip
    agent = MTSAC(cfg, obs_dim=2, act_dim=1, num_tasks=1)
    g = torch.Generator().manual_seed(1)
    for _ in range(300):
        obs = torch.rand(64, 2, generator=g) * 2 - 1
        act = torch.rand(64, 1, generator=g) * 2 - 1
        reward = scale * (obs[:, 0] + act[:, 0] * obs[:, 1])
        batch = Batch(obs, act, reward, obs, torch.ones(64), torch.zeros(64, dtype=torch.long))
        agent.critic_update(batch)
    obs = torch.rand(256, 2, generator=g) * 2 - 1
    act = torch.rand(256, 1, generator=g) * 2 - 1
    want = scale * (obs[:, 0] + act[:, 0] * obs[:, 1])
    with torch.no_grad():
        got = agent.critic(obs, act, torch.zeros(256, dtype=torch.long))[0]
    return float((got - want).abs().mean()) / (4.0 * scale)


def test_the_categorical_critic_fits_returns_the_same_at_any_scale() -> None:
    """The classification loss sees bins, not magnitudes: returns 300 times larger
    (with a support 300 times wider) are fitted to the same share of their range."""
    small, large = _relative_fit_error(1.0), _relative_fit_error(300.0)
    assert small < 0.03
    assert large == pytest.approx(small, abs=1e-3)


def test_a_short_categorical_run_is_seeded(tmp_path: Path) -> None:
    hl_gauss = {"bins": 21, "v_min": -100.0, "v_max": 10.0}
    assert_short_run_is_seeded({"hl_gauss": hl_gauss}, tmp_path)
