"""mtrl: multi-task RL, meta-learning and lifelong learning on gymnasium environments.

Importing :mod:`mtrl` has no side effects. Call :func:`mtrl.envs.register_envs` (or use
:func:`mtrl.envs.make`) to register the ``mtrl/...`` gymnasium ids.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
