"""Networks: plain MLPs and task-conditioned multi-task architectures."""

from mtrl.nets.layers import TaskLinear
from mtrl.nets.mlp import mlp
from mtrl.nets.multitask import MultiTaskNet, NetConfig, TaskEncoder

__all__ = ["MultiTaskNet", "NetConfig", "TaskEncoder", "TaskLinear", "mlp"]
