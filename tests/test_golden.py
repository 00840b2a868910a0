"""Golden runs: every kind and component trains to the numbers recorded in tests/golden/
(metrics.csv without timing, summary.json's results), so structure can move without
moving a number. Re-record only on purpose: `.venv/bin/python tests/golden.py NAME`,
saying why in the commit. Records are kept per numerics class (tests/golden.py)."""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from golden import (
    DEFAULT,
    GOLDEN_DIR,
    PORTABLE_NUMERICS,
    fingerprint,
    flat,
    is_exact,
    largest_drift,
    metrics_text,
    numerics_class,
    portable_env,
    record_dir,
    record_files,
    records,
    results_text,
    tolerance,
    train,
)
from recipes import GOLDEN, RESUMED_GOLDEN, collect_datasets

# the others are reproduced by test_resume's Ctrl-C/SIGTERM test against the same files
CHECKED_HERE = sorted(set(GOLDEN) - set(RESUMED_GOLDEN.values()))


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return collect_datasets(tmp_path_factory.mktemp("datasets"))


def _same(record: Path, file: str, text: str) -> None:
    want = (record / file).read_text()
    if text != want:
        diff = difflib.unified_diff(want.splitlines(), text.splitlines(), "golden", "now", n=0)
        where = f"{record.parent.name}/{record.name}/{file} (this machine: {numerics_class()})"
        pytest.fail(f"{where} moved:\n" + "\n".join(list(diff)[:12]))


@pytest.mark.parametrize("name", CHECKED_HERE)
def test_golden_run_is_unchanged(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    record = record_dir(name)
    if record is None:
        pytest.skip(
            f"{name} has no record for this machine's numerics class {numerics_class()} "
            f"(recorded: {', '.join(records(name))}); add one with "
            f"`.venv/bin/python tests/golden.py --add {name}`"
        )
    needs = "@DATASETS@" in GOLDEN[name]
    root = request.getfixturevalue("datasets") if needs else None
    run = tmp_path / "run"
    train(name, root, run)
    if is_exact(record):
        _same(record, "metrics.csv", metrics_text(run))
        _same(record, "results.json", results_text(run))
    else:
        _close(name, record, {"metrics.csv": metrics_text(run), "results.json": results_text(run)})


def _close(name: str, record: Path, files: dict[str, str]) -> None:
    """On a machine of unknown kind: within the run's tolerance of ``record``, saying so."""
    worst, where = largest_drift(flat(record_files(record)), flat(files))
    limit = tolerance(name)
    cls = numerics_class()
    assert worst <= limit, (
        f"{name}/{record.name} moved by {worst:.3g} at {where} (this machine: {cls}, "
        f"which has no records; tolerance {limit:.3g})"
    )
    warnings.warn(
        f"{name}: compared with {record.name} within {limit:.3g} (largest drift {worst:.3g}), "
        f"not bit for bit: numerics class {cls} has no records; add them with "
        "`.venv/bin/python tests/golden.py --add`",
        stacklevel=2,
    )


def test_every_golden_recipe_is_recorded() -> None:
    assert sorted(p.name for p in GOLDEN_DIR.iterdir() if p.is_dir()) == sorted(GOLDEN)
    for name in GOLDEN:
        have = records(name)
        assert have, f"{name} has no record"
        assert all(r == DEFAULT or re.fullmatch("[0-9a-f]{12}", r) for r in have), have
        for r in have:
            assert (GOLDEN_DIR / name / r / "results.json").is_file(), (name, r)
        assert tolerance(name) < 0.1, name  # its records share a structure and nearly agree


def test_the_numerics_class_is_the_same_probe_after_probe() -> None:
    """The fingerprint that picks a machine's records depends on nothing but the machine
    (no unset memory, no clock): two fresh probes agree, and it is 12 hex digits."""
    runs = [fingerprint(portable_env()) for _ in range(2)]
    assert runs[0] == runs[1]
    assert runs[0]["class"] == numerics_class()
    assert re.fullmatch("[0-9a-f]{12}", numerics_class())


def test_the_numerics_class_tells_the_portable_path_from_the_native_one() -> None:
    """The probe sees the code paths that moved golden runs between machines: MKL's own
    branch and torch's vector kernels give this machine another class."""
    native = {k: v for k, v in portable_env().items() if k not in PORTABLE_NUMERICS}
    assert fingerprint(native)["class"] != numerics_class()


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


def test_a_machine_compares_with_its_class_record_else_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import golden

    for name, recs in {"both": ("default", "0123456789ab"), "other": ("ba9876543210",)}.items():
        for rec in recs:
            (tmp_path / name / rec).mkdir(parents=True)
            (tmp_path / name / rec / "metrics.csv").write_text("step\n")
    monkeypatch.setattr(golden, "GOLDEN_DIR", tmp_path)
    monkeypatch.setattr(golden, "numerics_class", lambda: "0123456789ab")
    assert golden.record_dir("both") == tmp_path / "both" / "0123456789ab"
    assert golden.record_dir("other") is None  # another class's record only: skipped
    monkeypatch.setattr(golden, "numerics_class", lambda: "ffffffffffff")
    assert golden.record_dir("both") == tmp_path / "both" / "default"


def _fake_record(root: Path, name: str, record: str, loss: str = "0.5") -> Path:
    out = root / name / record
    out.mkdir(parents=True)
    (out / "metrics.csv").write_text(f"step,loss\n10,{loss}\n")
    (out / "results.json").write_text('{"return": [1.0, -2.5]}\n')
    return out


def test_a_machine_reproduces_bit_for_bit_its_own_records_and_default_only_where_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its class's record always; ``default`` where its class has records (``--add``
    found the rest equal) or it reproduces the canary; else (a third kind of machine)
    not: it compares within tolerance."""
    import golden

    own = _fake_record(tmp_path, "a", "0123456789ab")
    default = _fake_record(tmp_path, "b", "default")
    monkeypatch.setattr(golden, "GOLDEN_DIR", tmp_path)
    monkeypatch.setattr(golden, "numerics_class", lambda: "0123456789ab")
    monkeypatch.setattr(golden, "reproduces_default", lambda: False)
    assert golden.is_exact(own) and golden.is_exact(default)
    monkeypatch.setattr(golden, "numerics_class", lambda: "ffffffffffff")
    assert not golden.is_exact(default)
    monkeypatch.setattr(golden, "reproduces_default", lambda: True)
    assert golden.is_exact(default)


def test_drift_is_relative_above_1e_3_and_absolute_below() -> None:
    assert largest_drift({"x": "1.0"}, {"x": "1.0"}) == (0.0, "x")
    assert largest_drift({"x": "1.0", "y": "2"}, {"x": "1.001", "y": "2"})[0] == pytest.approx(
        0.001 / 1.002
    )
    assert largest_drift({"x": "1e-6"}, {"x": "3e-6"})[0] == pytest.approx(2e-6 / 1.003e-3)
    assert largest_drift({"x": "fifo"}, {"x": "lifo"})[0] == float("inf")
    assert largest_drift({"x": "nan"}, {"x": "nan"})[0] == 0.0
    assert largest_drift({"x": "1"}, {"y": "1"})[0] == float("inf")  # another structure


def test_a_runs_tolerance_is_20_times_its_records_drift_at_least_1e_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import golden

    _fake_record(tmp_path, "one", "default")
    _fake_record(tmp_path, "two", "default", loss="0.5")
    _fake_record(tmp_path, "two", "0123456789ab", loss="0.501")
    monkeypatch.setattr(golden, "GOLDEN_DIR", tmp_path)
    assert tolerance("one") == 1e-4
    assert tolerance("two") == pytest.approx(20 * 0.001 / (1e-3 + 0.501))
    files = record_files(tmp_path / "one" / "default")
    assert flat(files) == {
        "metrics.csv:0:step": "10",
        "metrics.csv:0:loss": "0.5",
        "results.json:.return[0]": "1.0",
        "results.json:.return[1]": "-2.5",
    }


@pytest.mark.parametrize("name", ["sine_maml", "mtppo_bc"])
def test_the_tolerance_fails_a_moved_loss(name: str) -> None:
    """Within tolerance still fails a real change: every loss of a steady run (sine_maml)
    and of the most chaotic one (mtppo_bc: it branches on sampled actions) 10% off."""
    record = GOLDEN_DIR / name / DEFAULT
    moved = flat(record_files(record))
    for k, v in moved.items():
        if k.endswith("loss") and v:  # empty where a row logs no loss
            moved[k] = repr(float(v) * 1.1 + 1e-3)
    assert largest_drift(flat(record_files(record)), moved)[0] > tolerance(name)
