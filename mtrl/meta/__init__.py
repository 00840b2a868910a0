"""Meta-learners on a functional core: MAML, first-order MAML, ANIL and Meta-SGD."""

from mtrl.meta.compat import MAML, FastLearner, MetaSGD
from mtrl.meta.maml import LayerLr, MetaLearner, MetaLearnerConfig, UnsupportedModuleError

__all__ = [
    "MAML",
    "FastLearner",
    "LayerLr",
    "MetaLearner",
    "MetaLearnerConfig",
    "MetaSGD",
    "UnsupportedModuleError",
]
