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


def _readme_blocks(lang: str) -> list[str]:
    text = (Path(__file__).parent.parent / "README.md").read_text()
    fence = "`" * 3
    parts = text.split(f"{fence}{lang}\n")[1:]
    return [p.split(fence, 1)[0] for p in parts]


def test_readme_recipes_load() -> None:
    import tomllib

    from mtrl.recipes import parse_recipe

    blocks = _readme_blocks("toml")
    assert blocks
    for block in blocks:
        kind, cfg = parse_recipe(tomllib.loads(block), "README.md")
        assert kind.name == cfg.kind


def test_readme_curriculum_snippet_runs(capsys: pytest.CaptureFixture[str]) -> None:
    (block,) = [b for b in _readme_blocks("python") if "CurriculumCallback" in b]
    exec(compile(block, "README.md", "exec"), {})
    assert "unlocked_at" in capsys.readouterr().out
