"""Shared fixtures: warnings that are not failures, and seeded global generators."""

from __future__ import annotations

import random
import warnings
import zlib

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _quiet_style_warnings() -> None:
    # gymnasium warns about infinite Box bounds and Meta-World's experts about gains;
    # neither is a failure of the behaviour under test.
    warnings.filterwarnings("ignore", message=".*infinity.*")
    warnings.filterwarnings("ignore", message=".*Constant\\(s\\) may be too high.*")


@pytest.fixture(autouse=True)
def _seed_global_rngs(request: pytest.FixtureRequest) -> None:
    # Draws from the global generators (torch.randn, np.random.rand, network init) are the
    # same whatever order the tests run in and whichever xdist worker runs them: each
    # test starts from a seed of its own id. Spaces have generators of their own; the
    # hygiene test requires each sampled space to be seeded.
    seed = zlib.crc32(request.node.nodeid.encode())
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
