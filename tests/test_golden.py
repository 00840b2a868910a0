"""Golden runs: every kind and component trains to the numbers recorded in tests/golden/
(metrics.csv without timing, summary.json's results), so structure can move without
moving a number. Re-record only on purpose: `.venv/bin/python tests/golden.py NAME`,
saying why in the commit."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from golden import GOLDEN_DIR, metrics_text, results_text, train
from recipes import GOLDEN, RESUMED_GOLDEN, collect_datasets

# the others are reproduced by test_resume's Ctrl-C/SIGTERM test against the same files
CHECKED_HERE = sorted(set(GOLDEN) - set(RESUMED_GOLDEN.values()))


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return collect_datasets(tmp_path_factory.mktemp("datasets"))


def _same(name: str, file: str, text: str) -> None:
    want = (GOLDEN_DIR / name / file).read_text()
    if text != want:
        diff = difflib.unified_diff(want.splitlines(), text.splitlines(), "golden", "now", n=0)
        pytest.fail(f"{name}/{file} moved:\n" + "\n".join(list(diff)[:12]))


@pytest.mark.parametrize("name", CHECKED_HERE)
def test_golden_run_is_unchanged(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    needs = "@DATASETS@" in GOLDEN[name]
    root = request.getfixturevalue("datasets") if needs else None
    run = tmp_path / "run"
    train(name, root, run)
    _same(name, "metrics.csv", metrics_text(run))
    _same(name, "results.json", results_text(run))


def test_every_golden_recipe_is_recorded() -> None:
    assert sorted(p.name for p in GOLDEN_DIR.iterdir() if p.is_dir()) == sorted(GOLDEN)
