"""Task-conditioned networks: batched per-task layers and every sharing scheme."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtrl.errors import ConfigError
from mtrl.nets import MultiTaskNet, NetConfig, TaskLinear

ARCHS = ["shared", "film", "multihead", "soft", "moe", "softmod"]


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
    cfg = NetConfig(arch=arch, hidden=[16, 16, 16])  # type: ignore[arg-type]
    net = MultiTaskNet(cfg, in_dim=5, out_dim=3, num_tasks=4)
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
    assert float(net.regularization().detach()) > 0
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


@pytest.mark.parametrize("arch", ["shared", "film", "multihead", "moe", "softmod"])
def test_last_shared_weight_gets_gradient_from_every_task(arch: str) -> None:
    torch.manual_seed(0)
    net = MultiTaskNet(NetConfig(arch=arch, hidden=[8, 8, 8]), 3, 2, 3)  # type: ignore[arg-type]
    (w,) = net.last_shared_weight()
    assert any(w is p for p in net.parameters()) and w.dim() == 2
    x = torch.randn(3, 3)
    for task in range(3):
        (g,) = torch.autograd.grad(net(x, torch.full((3,), task)).sum(), [w])
        assert g.abs().sum() > 0
    soft = MultiTaskNet(NetConfig(arch="soft", hidden=[8]), 3, 2, 3)
    assert soft.last_shared_weight() == []


def test_soft_modularization_equals_a_module_by_module_reference() -> None:
    torch.manual_seed(0)
    cfg = NetConfig(arch="softmod", hidden=[6, 5, 4, 3], num_experts=3)
    net = MultiTaskNet(cfg, 2, 2, 4).softmod
    x, tid = torch.randn(5, 2), torch.tensor([3, 0, 1, 1, 2])
    relu = torch.relu
    expected = []
    for b in range(5):  # one sample, one module at a time
        g = relu(net.state_embed(x[b]))
        f = g * net.task_embed.weight[tid[b]]
        probs, logits = [], net.route_down[0](relu(f))
        for i in range(3 - 1):
            if i > 0:
                logits = net.route_down[i](relu(net.route_up[i - 1](probs[-1].reshape(-1)) * f))
            probs.append(torch.softmax(logits.reshape(3, 3), dim=-1))
        outs = [g, g, g]
        for i, layer in enumerate(net.module_layers):
            outs = [relu(outs[j] @ layer.weight[j] + layer.bias[j]) for j in range(3)]
            if i < len(probs):
                outs = [sum(probs[i][j, k] * outs[k] for k in range(3)) for j in range(3)]
        expected.append(net.out(sum(outs)))
    torch.testing.assert_close(net(x, tid), torch.stack(expected))
    routes = net.routing(relu(net.state_embed(x)), tid)
    assert len(routes) == 2 and routes[0].shape == (5, 3, 3)
    torch.testing.assert_close(routes[1].sum(-1), torch.ones(5, 3))
    assert not torch.allclose(routes[0][2], routes[0][3])  # same task, different state
    with pytest.raises(ConfigError, match="needs >= 2 module layers"):
        NetConfig(arch="softmod", hidden=[8, 8])
