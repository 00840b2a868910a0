"""Task families, Meta-World suites, wrappers and the multi-task vector env."""

from mtrl.envs.registration import register_envs
from mtrl.envs.registry import get_family, known_names, list_entries

__all__ = ["get_family", "known_names", "list_entries", "register_envs"]
