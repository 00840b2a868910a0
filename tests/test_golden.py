"""Golden runs: every kind and component trains to the numbers recorded in tests/golden/
(metrics.csv without timing, summary.json's results), so structure can move without
moving a number. Re-record only on purpose: `.venv/bin/python tests/golden.py NAME`,
saying why in the commit."""

from __future__ import annotations

import difflib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from golden import GOLDEN_DIR, PORTABLE_NUMERICS, metrics_text, portable_env, results_text, train
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


def test_golden_runs_run_on_the_portable_numerics() -> None:
    """The settings golden runs train under take effect: torch's scalar kernels and none
    of numpy's dispatch targets above its x86-64-v2 baseline (a renamed setting in a
    newer library would make the files machine-specific again, and fail here). MKL's
    CBWR mode has no query through torch and is not checked."""
    probe = (
        "import json, numpy, torch; f = numpy._core._multiarray_umath.__cpu_features__; "
        "print(json.dumps([torch.backends.cpu.get_cpu_capability(), "
        "{k: f[k] for k in ('X86_V3', 'X86_V4', 'AVX512_ICL', 'AVX512_SPR')}]))"
    )
    cmd = [sys.executable, "-c", probe]
    out = subprocess.run(cmd, env=portable_env(), capture_output=True, text=True, check=True)
    capability, numpy_targets = json.loads(out.stdout)
    assert capability == "DEFAULT"
    assert numpy_targets == dict.fromkeys(numpy_targets, False)
    assert set(numpy_targets) == set(PORTABLE_NUMERICS["NPY_DISABLE_CPU_FEATURES"].split())
