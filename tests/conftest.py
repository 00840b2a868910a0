"""Shared fixtures: warnings that are not failures, seeded global generators, signal
handlers restored after each test; the learning tests run first; one torch thread."""

from __future__ import annotations

import random
import signal
import warnings
import zlib
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from golden import GOLDEN_DIR

# One torch thread per process: the suite runs in two xdist workers on two cores, and
# two workers of two threads each spend small updates waiting on each other's threads
# (a 32-unit critic's update: 59 ms with 2 threads beside a busy core, 6 ms with 1).
# Runs set their own count from the recipe's `threads` as they do outside the tests.
torch.set_num_threads(1)


def pytest_report_header() -> str:
    """The numerics class golden runs compare under (tests/golden.py), so that a CI log
    says which records its machine used."""
    from golden import CANARY, numerics_class, records

    cls = numerics_class()
    own = sum(cls in records(p.name) for p in GOLDEN_DIR.iterdir() if p.is_dir())
    if own:
        return f"golden runs: numerics class {cls} (its own record for {own} runs, else default)"
    return (
        f"golden runs: numerics class {cls} has no records: default bit for bit if this "
        f"machine reproduces {CANARY}'s, else within each run's tolerance"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The learning tests (marked slow, minutes each) first: the two xdist workers then
    fill in around them with the short tests instead of one long test running alone at
    the end of the suite."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _restore_signal_handlers() -> Iterator[None]:
    # A library that installs handlers of its own (ray.init: SIGTERM) must not change how
    # later tests in this worker process stop.
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        if handler is not None:
            signal.signal(sig, handler)


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
