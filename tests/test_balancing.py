"""Gradient balancing against hand-computed cases and brute-force references."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from mtrl.agents.balancing import (
    FAMO,
    GradNorm,
    TaskBalancer,
    UncertaintyWeighting,
    assign_gradient,
    cagrad,
    pcgrad,
    per_task_gradients,
)


def test_pcgrad_projects_two_conflicting_gradients_by_hand() -> None:
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # dot = -1: they conflict
    # g1 - (g1.g2/|g2|^2) g2 = [0.5, 0.5]; g2 - (g2.g1/|g1|^2) g1 = [0, 1]
    torch.testing.assert_close(pcgrad(g), torch.tensor([0.5, 1.5]))


def test_pcgrad_leaves_agreeing_gradients_alone() -> None:
    g = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.2, 1.0]])
    torch.testing.assert_close(pcgrad(g, torch.Generator().manual_seed(0)), g.sum(0))


def test_pcgrad_is_reproducible_per_seed_and_order_dependent() -> None:
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0], [0.2, -1.0]])
    outs = [pcgrad(g, torch.Generator().manual_seed(seed)) for seed in range(6)]
    torch.testing.assert_close(outs[0], pcgrad(g, torch.Generator().manual_seed(0)))
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])  # the random order matters
    single = torch.tensor([[3.0, -1.0]])
    torch.testing.assert_close(pcgrad(single), single[0])


def _cagrad_brute_force(g: torch.Tensor, c: float) -> torch.Tensor:
    g0 = g.mean(0)
    best, best_w = float("inf"), 0.0
    for w1 in torch.linspace(0, 1, 20001).tolist():
        gw = w1 * g[0] + (1 - w1) * g[1]
        obj = float(gw @ g0 + c * g0.norm() * gw.norm())
        if obj < best:
            best, best_w = obj, w1
    gw = best_w * g[0] + (1 - best_w) * g[1]
    return (g0 + c * g0.norm() / gw.norm() * gw) / (1 + c)


def test_cagrad_matches_a_brute_force_solution_of_its_dual() -> None:
    g = torch.tensor([[1.0, 0.1], [-0.6, 1.0]], dtype=torch.float64)
    for c in (0.2, 0.5, 0.8):
        torch.testing.assert_close(
            cagrad(g, c, iters=300), _cagrad_brute_force(g, c), atol=2e-3, rtol=0
        )


def test_cagrad_improves_the_worst_task_over_the_mean_gradient() -> None:
    g = torch.tensor([[1.0, 0.0], [-0.8, 0.3]])
    g0 = g.mean(0)
    d = cagrad(g, c=0.5)
    assert float((g @ d).min()) > float((g @ g0).min())
    torch.testing.assert_close(cagrad(g, c=0.0), g0)


def test_uncertainty_weighting_learns_log_variance_equal_to_log_loss() -> None:
    losses = torch.tensor([0.5, 2.0, 8.0])
    uw = UncertaintyWeighting(3)
    torch.testing.assert_close(uw(losses), losses.sum())
    opt = torch.optim.Adam(uw.parameters(), lr=0.05)
    for _ in range(2000):
        opt.zero_grad()
        uw(losses).backward()
        opt.step()
    torch.testing.assert_close(uw.log_vars.detach().exp(), losses, rtol=1e-2, atol=1e-3)


def test_gradnorm_shrinks_the_weight_of_the_task_with_the_larger_gradient() -> None:
    w = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    gn = GradNorm(2, alpha=0.0, lr=0.05)
    for _ in range(50):
        losses = torch.stack([10.0 * (w**2).sum(), (w**2).sum()])  # same rate, 10x the gradient
        gn.update(losses, [w])
    weights = gn.weights.detach()
    assert float(weights[0]) < float(weights[1])
    assert float(weights.sum()) == pytest.approx(2.0, abs=1e-5)


def test_famo_gives_weight_to_the_task_that_improved_less() -> None:
    famo = FAMO(2, lr=0.1, gamma=0.0)
    famo(torch.tensor([1.0, 1.0]))
    famo.update(torch.tensor([0.5, 0.95]))  # task 1 barely improved
    z = famo.weights()
    assert float(z[1]) > float(z[0])
    with pytest.raises(RuntimeError, match="forward"):
        famo.update(torch.tensor([0.4, 0.9]))


def test_per_task_gradients_and_assign_roundtrip() -> None:
    a = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    b = torch.nn.Parameter(torch.tensor(3.0))
    losses = torch.stack([(a**2).sum(), a[0] * b])
    g = per_task_gradients(losses, [a, b])
    torch.testing.assert_close(g, torch.tensor([[2.0, 4.0, 0.0], [3.0, 0.0, 1.0]]))
    assign_gradient([a, b], pcgrad(g))
    assert a.grad is not None and b.grad is not None and a.grad.shape == (2,)
    with pytest.raises(ValueError, match="params need"):
        assign_gradient([a, b], torch.zeros(2))


def _two_task_problem() -> tuple[torch.nn.Linear, torch.nn.Linear, Callable[[], torch.Tensor]]:
    torch.manual_seed(0)
    trunk, head = torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)
    x = torch.randn(16, 3)
    y = torch.stack([torch.randn(16), 10.0 * torch.randn(16)], dim=1)  # task 1 10x the scale

    def losses() -> torch.Tensor:
        return ((head(torch.relu(trunk(x))) - y) ** 2).mean(dim=0)

    return trunk, head, losses


def _balanced_training(
    mode: str, steps: int, lr: float, weight_lr: float
) -> tuple[TaskBalancer, torch.Tensor, torch.Tensor]:
    """``steps`` balanced Adam steps on the two-task problem: balancer, start and end losses."""
    trunk, head, losses = _two_task_problem()
    params = [*trunk.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    bal = TaskBalancer(mode, 2, lr=weight_lr)  # type: ignore[arg-type]
    start = losses().detach()
    for _ in range(steps):
        bal.step(opt, params, losses(), torch.zeros(()), shared=[trunk.weight], recompute=losses)
    return bal, start, losses().detach()


@pytest.mark.parametrize("mode", ["none", "pcgrad", "cagrad", "uncertainty", "gradnorm", "famo"])
def test_task_balancer_steps_reduce_every_task_loss(mode: str) -> None:
    bal, start, end = _balanced_training(mode, 100, 1e-2, 1e-2)
    assert (end < start).all()
    assert float(bal.task_weights().sum()) == pytest.approx(2.0)


@pytest.mark.parametrize("mode", ["uncertainty", "gradnorm", "famo"])
def test_task_balancer_weightings_move_the_way_their_papers_say(mode: str) -> None:
    """Uncertainty weighting weights each loss by 1 / its size and GradNorm lowers the
    weight of the task with the larger gradient: both favour the small-scale task 0.
    FAMO favours the task whose log-loss has dropped less."""
    bal, start, end = _balanced_training(mode, 50, 1e-3, 5e-2)
    w = bal.task_weights()
    if mode == "famo":
        log_drop = start.log() - end.log()
        favoured = int(log_drop.argmin())
    else:
        favoured = 0
    assert float(w[favoured]) > float(w[1 - favoured])


def test_task_balancer_rejects_what_it_cannot_balance() -> None:
    trunk, head, losses = _two_task_problem()
    params = [*trunk.parameters(), *head.parameters()]
    opt = torch.optim.SGD(params, lr=0.1)
    with pytest.raises(ValueError, match="unknown balancing 'mgda'"):
        TaskBalancer("mgda", 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="losses >= 0"):
        TaskBalancer("famo", 2).step(opt, params, -losses(), torch.zeros(()), recompute=losses)
    with pytest.raises(ValueError, match="shared parameters"):
        TaskBalancer("gradnorm", 2).step(opt, params, losses(), torch.zeros(()))
    with pytest.raises(ValueError, match="recompute"):
        TaskBalancer("famo", 2).step(opt, params, losses(), torch.zeros(()))
    with pytest.raises(ValueError, match=r"losses must be \[2\]"):
        TaskBalancer("none", 2).step(opt, params, losses()[:1], torch.zeros(()))


def test_task_balancer_state_round_trips() -> None:
    trunk, head, losses = _two_task_problem()
    params = [*trunk.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)
    bal = TaskBalancer("famo", 2)
    for _ in range(3):
        bal.step(opt, params, losses(), torch.zeros(()), recompute=losses)
    fresh = TaskBalancer("famo", 2)
    fresh.load_state_dict(bal.state_dict())
    fresh.load_optimizer_state(bal.optimizer_state())
    torch.testing.assert_close(fresh.task_weights(), bal.task_weights())
    assert fresh.optimizer_state()["state"][0]["step"] == 3
