"""Task-conditioned networks: batched per-task layers and every sharing scheme."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtrl.errors import ConfigError
from mtrl.nets import MultiTaskNet, NetConfig, TaskLinear

ARCHS = ["shared", "film", "multihead", "soft", "moe"]


def test_task_linear_bmm_and_gather_paths_equal_a_per_task_loop() -> None:
    torch.manual_seed(0)
    layer = TaskLinear(3, 4, 5)
    x = torch.randn(6, 4)
    sorted_ids = torch.tensor([0, 0, 1, 1, 2, 2])  # task-sorted, balanced: bmm path
    mixed_ids = torch.tensor([2, 0, 1, 0, 2, 1])  # gather path
    for ids in (sorted_ids, mixed_ids):
        expected = torch.stack(
            [
                nn.functional.linear(x[i], layer.weight[t].T, layer.bias[t])
                for i, t in enumerate(ids)
            ]
        )
        torch.testing.assert_close(layer(x, ids), expected)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_conditions_on_the_task(arch: str) -> None:
    torch.manual_seed(0)
    net = MultiTaskNet(NetConfig(arch=arch, hidden=[16, 16]), in_dim=5, out_dim=3, num_tasks=4)  # type: ignore[arg-type]
    if arch == "film":  # FiLM starts as the identity; give the tasks distinct modulations
        nn.init.normal_(net.film, std=0.5)
    x = torch.randn(1, 5).expand(4, 5)
    out = net(x, torch.arange(4))
    assert out.shape == (4, 3)
    assert not torch.allclose(out[0], out[1])  # same input, different task: different output


def test_a_task_blind_network_ignores_the_task() -> None:
    net = MultiTaskNet(NetConfig(encoder="none", hidden=[8]), 5, 3, 4)
    x = torch.randn(1, 5).expand(4, 5)
    out = net(x, torch.arange(4))
    torch.testing.assert_close(out, out[:1].expand(4, 3))


def test_per_task_heads_only_receive_their_own_tasks_gradient() -> None:
    net = MultiTaskNet(NetConfig(arch="multihead", hidden=[8, 8]), 5, 2, 3)
    net(torch.randn(4, 5), torch.tensor([0, 0, 2, 2])).sum().backward()
    grad = net.heads.weight.grad
    assert grad is not None
    assert grad[0].abs().sum() > 0 and grad[2].abs().sum() > 0
    assert torch.equal(grad[1], torch.zeros_like(grad[1]))


def test_soft_sharing_penalty_pulls_task_networks_together() -> None:
    net = MultiTaskNet(NetConfig(arch="soft", hidden=[8], soft_l2=0.1), 5, 2, 3)
    assert float(net.regularization()) > 0
    with torch.no_grad():
        for layer in net.task_layers:
            layer.weight.copy_(layer.weight[:1].expand_as(layer.weight))
            layer.bias.copy_(layer.bias[:1].expand_as(layer.bias))
    assert float(net.regularization()) == pytest.approx(0.0, abs=1e-12)
    other = MultiTaskNet(NetConfig(arch="shared", hidden=[8]), 5, 2, 3)
    assert float(other.regularization()) == 0.0


def test_bad_inputs_name_the_problem() -> None:
    net = MultiTaskNet(NetConfig(hidden=[8]), 5, 2, 3)
    with pytest.raises(ValueError, match=r"task ids must lie in \[0, 3\)"):
        net(torch.randn(2, 5), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"x must be \[batch, 5\]"):
        net(torch.randn(2, 4), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integer tensor"):
        net(torch.randn(2, 5), torch.tensor([0.0, 1.0]))
    with pytest.raises(ConfigError, match="hidden"):
        NetConfig(hidden=[])


@pytest.mark.parametrize("arch", ["shared", "film", "multihead", "moe"])
def test_last_shared_weight_gets_gradient_from_every_task(arch: str) -> None:
    torch.manual_seed(0)
    net = MultiTaskNet(NetConfig(arch=arch, hidden=[8, 8]), 3, 2, 3)  # type: ignore[arg-type]
    (w,) = net.last_shared_weight()
    assert any(w is p for p in net.parameters()) and w.dim() == 2
    x = torch.randn(3, 3)
    for task in range(3):
        (g,) = torch.autograd.grad(net(x, torch.full((3,), task)).sum(), [w])
        assert g.abs().sum() > 0
    soft = MultiTaskNet(NetConfig(arch="soft", hidden=[8]), 3, 2, 3)
    assert soft.last_shared_weight() == []
