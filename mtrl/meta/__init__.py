"""Meta-learners on a functional core: MAML, first-order MAML, ANIL and Meta-SGD."""

from mtrl.meta.maml import MetaLearner, MetaLearnerConfig, UnsupportedModuleError

__all__ = ["MetaLearner", "MetaLearnerConfig", "UnsupportedModuleError"]
