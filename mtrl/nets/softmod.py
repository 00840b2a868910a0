"""Soft modularization (Yang et al. 2020): a base network of module layers whose
connections are weighted per sample by a routing network on state and task.

The base network has ``L`` layers of ``n`` modules (small ``Linear + act`` blocks,
stacked as one ``[n, in, out]`` parameter and run as one ``bmm``). Between layer ``l``
and ``l + 1`` a routing matrix ``p^l [batch, n, n]`` (a softmax over source modules)
mixes module outputs into the next layer's module inputs. The routing network reads
``f = g(s) * h(task)`` (state embedding times task embedding):
``p^1 = W_d^1 relu(f)``, ``p^{l+1} = W_d^{l+1} relu(W_u^l p^l * f)``. The last layer's
module outputs are summed and mapped to the output by a linear layer.
"""

from __future__ import annotations

import itertools
from typing import cast

import torch
from torch import Tensor, nn

from mtrl.nets.layers import TaskLinear


class SoftModularNet(nn.Module):
    """``forward(x [batch, in], task_ids [batch]) -> [batch, out]``.

    ``embed_dim`` is the width of the state and task embeddings (and the routing
    network); ``module_widths`` gives each module layer's width (at least two layers,
    otherwise nothing is routed); ``num_modules`` modules per layer.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        num_tasks: int,
        embed_dim: int,
        module_widths: list[int],
        num_modules: int,
        activation: nn.Module,
    ) -> None:
        super().__init__()
        if len(module_widths) < 2:
            raise ValueError(
                f"soft modularization needs >= 2 module layers, got widths {module_widths}"
            )
        self.num_modules = num_modules
        self.act = activation
        self.state_embed = nn.Linear(in_dim, embed_dim)
        self.task_embed = nn.Embedding(num_tasks, embed_dim)
        n = num_modules
        widths = [embed_dim, *module_widths]
        self.module_layers = nn.ModuleList(
            TaskLinear(n, a, b) for a, b in itertools.pairwise(widths)
        )
        routes = len(module_widths) - 1
        self.route_down = nn.ModuleList(nn.Linear(embed_dim, n * n) for _ in range(routes))
        self.route_up = nn.ModuleList(nn.Linear(n * n, embed_dim) for _ in range(routes - 1))
        self.out = nn.Linear(module_widths[-1], out_dim)

    def routing(self, state_emb: Tensor, task_ids: Tensor) -> list[Tensor]:
        """The routing probabilities ``[batch, n, n]`` (target, source) per connection,
        from the state embedding ``g(s)`` and the task ids."""
        f = state_emb * self.task_embed(task_ids)
        n, batch = self.num_modules, state_emb.shape[0]
        probs: list[Tensor] = []
        logits = self.route_down[0](self.act(f))
        for i in range(len(self.route_down)):
            if i > 0:
                up = self.route_up[i - 1](probs[-1].reshape(batch, n * n))
                logits = self.route_down[i](self.act(up * f))
            probs.append(torch.softmax(logits.reshape(batch, n, n), dim=-1))
        return probs

    def forward(self, x: Tensor, task_ids: Tensor) -> Tensor:
        emb = self.act(self.state_embed(x))
        probs = self.routing(emb, task_ids)
        h = emb.unsqueeze(0).expand(self.num_modules, -1, -1)  # [n, batch, embed]
        for i, layer in enumerate(self.module_layers):
            h = self.act(cast(TaskLinear, layer).forward_stacked(h))  # [n, batch, width]
            if i < len(probs):
                h = torch.einsum("bji,ibw->jbw", probs[i], h)
        return self.out(h.sum(dim=0))
