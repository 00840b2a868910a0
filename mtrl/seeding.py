"""The one seeding helper: every entry point seeds Python, NumPy and torch through it."""

from __future__ import annotations

import random
from typing import Any

import numpy as np


def seed_everything(seed: int, *, deterministic_torch: bool = False) -> np.random.Generator:
    """Seed ``random``, NumPy's global RNG and torch; return a fresh NumPy Generator.

    Library code should take the returned Generator (or a seed derived from it) rather
    than touching global state, so that runs are reproducible from ``seed`` alone.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # torch is a dependency, but seeding must not require it
        pass
    else:
        torch.manual_seed(seed)
        if deterministic_torch:
            torch.use_deterministic_algorithms(True)
    return np.random.default_rng(seed)


def derive_seeds(seed: int, n: int) -> list[int]:
    """Return ``n`` independent child seeds of ``seed`` (stable across platforms)."""
    children = np.random.SeedSequence(seed).spawn(n)
    return [int(c.generate_state(1, dtype=np.uint32)[0]) for c in children]


def global_rng_state() -> dict[str, Any]:
    """The global RNGs a training loop draws from (Python, NumPy, torch), for
    checkpoints: restoring them continues the random streams exactly."""
    import torch

    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def set_global_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
