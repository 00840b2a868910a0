"""Per-task reward normalisation against hand values and a slow reference loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtrl.agents.reward_norm import RewardNormalizer, merge_moments


def test_merge_moments_by_hand_and_for_any_split() -> None:
    # [1, 2] then [3, 4]: mean 2.5, sum of squared deviations 5
    c, m, s = merge_moments(0.0, 0.0, 0.0, np.array([1.0, 2.0]))
    assert (c, m, s) == (2.0, 1.5, 0.5)
    c, m, s = merge_moments(c, m, s, np.array([3.0, 4.0]))
    assert (c, m, s) == (4.0, 2.5, 5.0)
    data = np.random.default_rng(0).normal(3.0, 2.0, 101)
    c, m, s = 0.0, 0.0, 0.0
    for chunk in np.array_split(data, 7):
        c, m, s = merge_moments(c, m, s, chunk)
    assert m == pytest.approx(data.mean()) and s / c == pytest.approx(data.var())


def _reference_scales(
    rewards: np.ndarray, dones: np.ndarray, tasks: np.ndarray, gamma: float, num_tasks: int
) -> np.ndarray:
    """The slow way: every sub-env's discounted return at every step, grouped by task."""
    samples: list[list[float]] = [[] for _ in range(num_tasks)]
    for env in range(rewards.shape[1]):
        g = 0.0
        for t in range(rewards.shape[0]):
            g = gamma * g + rewards[t, env]
            samples[tasks[t, env]].append(g)
            if dones[t, env]:
                g = 0.0
    return np.array([1.0 / np.std(s) for s in samples])


def test_scales_match_the_reference_loop() -> None:
    rng = np.random.default_rng(1)
    steps, envs, gamma = 300, 4, 0.9
    tasks = np.tile([0, 0, 1, 1], (steps, 1))
    tasks[150:, 1] = 1  # a sub-env re-bound to another task mid-run (after an episode)
    rewards = rng.normal(0.0, 1.0, (steps, envs)) * np.where(tasks == 0, 100.0, 0.1)
    dones = np.zeros((steps, envs), dtype=bool)
    dones[49::50] = True
    norm = RewardNormalizer(2, envs, gamma)
    for t in range(steps):
        norm.observe(rewards[t], dones[t], tasks[t])
    ref = _reference_scales(rewards, dones, tasks, gamma, 2)
    np.testing.assert_allclose(norm.scales(), ref, rtol=1e-3)  # the prior weighs 1e-4
    # the loud task is scaled down, the quiet one up: both about unit return spread
    assert norm.scales()[0] < 0.02 and norm.scales()[1] > 3.0


def test_normalize_scales_per_task_and_clips() -> None:
    norm = RewardNormalizer(2, 1, 0.99, clip=5.0)
    norm.m2 = norm.count * np.array([4.0, 0.25])  # std 2 and 0.5
    np.testing.assert_allclose(
        norm.normalize(np.array([2.0, 2.0, 10.0]), np.array([0, 1, 1])), [1.0, 4.0, 5.0], rtol=1e-6
    )
    out = norm.normalize_tensor(torch.tensor([2.0, -4.0]), torch.tensor([0, 1]))
    torch.testing.assert_close(out, torch.tensor([1.0, -5.0]))


def test_state_round_trip_continues_exactly() -> None:
    rng = np.random.default_rng(2)
    a, b = RewardNormalizer(2, 2, 0.99), RewardNormalizer(2, 2, 0.99)
    for _ in range(10):
        a.observe(rng.normal(size=2), np.array([False, True]), np.array([0, 1]))
    b.load_state_dict(a.state_dict())
    for _ in range(10):
        r = rng.normal(size=2)
        a.observe(r, np.array([False, False]), np.array([0, 1]))
        b.observe(r, np.array([False, False]), np.array([0, 1]))
    np.testing.assert_array_equal(a.scales(), b.scales())
