"""Every recipe in experiments/ loads: users run them as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtrl.config import from_dict, read_toml
from mtrl.envs.rollout_run import RolloutConfig
from mtrl.recipes import load_recipe

EXPERIMENTS = sorted((Path(__file__).parent.parent / "experiments").glob("*.toml"))


def test_there_are_recipes() -> None:
    assert len(EXPERIMENTS) >= 10


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_recipe_loads(path: Path) -> None:
    data = read_toml(path)
    if "kind" in data:
        kind, _ = load_recipe(path)
        assert kind.name == data["kind"]
    else:  # `mtrl envs rollout --recipe`
        from_dict(RolloutConfig, data)
