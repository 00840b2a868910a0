"""Shared fixtures. Meta-World goal sets are cached under a per-session directory only
when the user has not chosen one, so test runs never depend on a stale cache."""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture(autouse=True)
def _quiet_style_warnings() -> None:
    # gymnasium warns about infinite Box bounds and Meta-World's experts about gains;
    # neither is a failure of the behaviour under test.
    warnings.filterwarnings("ignore", message=".*infinity.*")
    warnings.filterwarnings("ignore", message=".*Constant\\(s\\) may be too high.*")
