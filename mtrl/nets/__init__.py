"""Networks: plain MLPs and (later) task-conditioned multi-task architectures."""

from mtrl.nets.mlp import mlp

__all__ = ["mlp"]
