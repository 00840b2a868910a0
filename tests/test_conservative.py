"""Conservatism on demonstration states: the hinge by hand, and critics fitted with it
keep demonstrated actions at their local maxima where plain fitting does not."""

from __future__ import annotations

import numpy as np
import torch

from mtrl.agents.sac import MTSAC, SACConfig, UpdateExtension
from mtrl.demos.conservative import DemoConservatism, margin_penalty
from mtrl.demos.replay import DemoReplay
from mtrl.nets.multitask import NetConfig


def test_margin_penalty_by_hand() -> None:
    q_demo = torch.tensor([1.0, 2.0])
    q_near = torch.tensor([[0.5, 1.5], [3.0, 2.0]])
    # exceedances: [[0, 0.5], [1, 0]] -> mean 0.375
    assert float(margin_penalty(q_demo, q_near)) == 0.375


def _demos(rows: int = 200) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(rows, 3)).astype(np.float32)
    return {
        "obs": obs,
        "action": np.tanh(obs[:, :2]).astype(np.float32),  # the expert: a fixed map
        "reward": rng.normal(size=rows).astype(np.float32),  # values the critics can't rank
        "next_obs": rng.normal(size=(rows, 3)).astype(np.float32),
        "terminated": np.zeros(rows, dtype=np.float32),
        "task_id": np.arange(rows) % 2,
    }


def _violation(agent: MTSAC, replay: DemoReplay) -> float:
    """Fresh perturbations: how far they are valued above the demonstrated action, on
    average (the slope that would lead an actor away from the demonstration)."""
    g = torch.Generator().manual_seed(123)
    batch = replay.sample(torch.tensor([0, 1]), 100, g)
    with torch.no_grad():
        d = torch.minimum(*agent.critic(batch.obs, batch.actions, batch.task_ids))
        near = (batch.actions + 0.1 * torch.randn(batch.actions.shape, generator=g)).clamp(-1, 1)
        n = torch.minimum(*agent.critic(batch.obs, near, batch.task_ids))
    return float(margin_penalty(d, n.unsqueeze(-1)))


def _fit(weight: float) -> tuple[float, float]:
    torch.manual_seed(0)
    small = NetConfig(hidden=[64, 64])
    agent = MTSAC(SACConfig(actor=small, critic=small, critic_lr=1e-3), 3, 2, 2)
    replay = DemoReplay(_demos(), 2)
    gen = torch.Generator().manual_seed(0)
    if weight:
        agent.extension = DemoConservatism(
            agent, UpdateExtension(), replay, 32, weight, 0.1, 10, gen
        )
    for _ in range(300):
        agent.critic_update(replay.sample(torch.tensor([0, 1]), 32, gen))
    last = agent.extension.last_penalty if isinstance(agent.extension, DemoConservatism) else 0
    return _violation(agent, replay), last


def test_conservative_fitting_keeps_demonstrated_actions_on_top() -> None:
    plain, _ = _fit(0.0)
    kept, penalty = _fit(10.0)
    # without the hinge nothing ranks the demonstrated action (the critics never see
    # other actions); with it at a weight that dominates the TD loss, what it trains
    # on (other perturbations of the same states) falls several-fold
    assert plain > 0.0 and penalty >= 0.0
    assert kept < plain / 4


def test_with_popart_the_penalty_is_on_each_tasks_normalised_scale() -> None:
    """PopArt critics learn on the normalised scale: the margin is measured there too,
    so a task whose values are 1000x larger does not outweigh the TD loss."""
    from mtrl.agents.popart import PopArtConfig

    torch.manual_seed(0)
    small = NetConfig(hidden=[16])
    agent = MTSAC(SACConfig(actor=small, critic=small, popart=PopArtConfig(beta=1.0)), 3, 2, 2)
    pop = agent.critic.popart
    assert pop is not None
    pop.update(torch.tensor([0.0, 2.0, 0.0, 2000.0]), torch.tensor([0, 0, 1, 1]))
    replay = DemoReplay(_demos(), 2)
    cons = DemoConservatism(
        agent, UpdateExtension(), replay, 8, 1.0, 0.1, 4, torch.Generator().manual_seed(0)
    )
    got = cons.critic_penalty()
    assert got is not None
    gen = torch.Generator().manual_seed(0)  # the same draws, by hand
    batch = replay.sample(replay.tasks(), 8, gen)
    near = (batch.actions.unsqueeze(1) + 0.1 * torch.randn((16, 4, 2), generator=gen)).clamp(-1, 1)
    sigma = pop.std[batch.task_ids]
    tid = batch.task_ids.repeat_interleave(4)
    demo = agent.critic(batch.obs, batch.actions, batch.task_ids)
    nearby = agent.critic(batch.obs.repeat_interleave(4, 0), near.reshape(64, 2), tid)
    by_hand = sum(
        margin_penalty(d / sigma, n.reshape(16, 4) / sigma[:, None])
        for d, n in zip(demo, nearby, strict=True)
    )
    assert float(got.detach()) == float(by_hand.detach()) > 0  # type: ignore[union-attr]
