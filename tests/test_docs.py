"""The guides under docs/ say what the code does: their Python blocks run, and the
layers they describe are the ones import-linter enforces."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from mtrl.agents.hooks import LoopComponent, Step

ROOT = Path(__file__).parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))


def _blocks(path: Path, lang: str) -> list[str]:
    fence = "`" * 3
    parts = path.read_text().split(f"{fence}{lang}\n")[1:]
    return [p.split(fence, 1)[0] for p in parts]


@pytest.mark.parametrize("path", DOCS, ids=[p.stem for p in DOCS])
def test_python_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__main__"}
    for block in _blocks(path, "python"):
        exec(compile(block, str(path), "exec"), namespace)


def test_the_example_component_logs_what_it_observes() -> None:
    namespace: dict[str, object] = {}
    for block in _blocks(ROOT / "docs" / "architecture.md", "python"):
        exec(compile(block, "architecture.md", "exec"), namespace)
    cls = namespace["FirstTaskShare"]
    assert isinstance(cls, type) and issubclass(cls, LoopComponent)
    part = cls()
    tids = np.array([0, 1, 0, 0])
    zeros = np.zeros(4)
    part.observe(Step(zeros, zeros, zeros, zeros, zeros, zeros.astype(bool), tids), {})
    assert part.log_metrics() == {"first_task_share": 0.75}
    assert part.checkpoint() == {} and part.explores(0) is None and not part.finished()


def test_architecture_lists_the_enforced_layers() -> None:
    """Every module the import-linter contract names appears in docs/architecture.md."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    layers = config["tool"]["importlinter"]["contracts"][0]["layers"]
    text = (ROOT / "docs" / "architecture.md").read_text()
    for layer in layers:
        for module in layer.replace("|", ":").split(":"):
            name = module.strip().removeprefix("mtrl.")
            assert name in text, f"docs/architecture.md does not mention {module.strip()}"
