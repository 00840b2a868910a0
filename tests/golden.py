"""Golden runs: the numbers of every small recipe in tests/recipes.py, kept under
tests/golden/<name>/<record>/ so that a refactor that changes any of them fails a test.

    .venv/bin/python tests/golden.py [NAME ...]        # re-record (on purpose only)
    .venv/bin/python tests/golden.py --add [NAME ...]  # this machine's record beside the rest

Kept: metrics.csv without its timing columns, and summary.json's results.

A golden run trains in a process of its own on each library's portable code path
(``PORTABLE_NUMERICS``): a CPU's vector width moves the last bits of torch's, MKL's and
numpy's float results (the same recipe on an AVX-512 machine and on an AVX2 machine
differed from the 8th digit), and the files must hold on whichever machine runs the
suite. Those paths are chosen when a library loads, hence the separate process.

Even that path is not the same everywhere: MKL's vector math (torch's sin, exp, log, tanh
on CPU) gave other last bits on a second kind of x86 machine, so records are kept per
numerics class, the fingerprint ``tests/numerics_probe.py`` prints. A machine compares
with its class's record, else with ``default`` (the records made before classes were
kept, on the machine that made them); with neither, test_golden skips and says how to add
one. Re-recording on purpose replaces every record of that run with this class's.

Bit for bit where the record is known to be this machine's numbers: its class's own, or
``default`` where its class has records (``--add`` found the rest equal to ``default``)
or where it reproduces the canary run's ``default`` record. A third kind of machine,
with none of its own, compares within each run's tolerance instead (``tolerance``: 20×
the largest difference between that run's records) and says so: its numbers cannot
equal records made elsewhere, and a suite red by the machine it ran on blocks everything.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
GOLDEN_DIR = HERE / "golden"
TIMING = {"env_steps_per_s", "steps_per_s", "tasks_per_s", "wall_s", "fps", "seconds"}


# scalar ATen kernels, MKL's reproducible path for every x86 CPU, numpy's baseline SIMD
PORTABLE_NUMERICS = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE,STRICT",
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
}


DEFAULT = "default"  # the record of a machine with none of its own
# a cheap run whose records differ between the known classes: it tells them apart
CANARY = "sine_metasgd"
# the least relative tolerance, and how many times a run's cross-machine drift it allows
TOLERANCE_FLOOR, TOLERANCE_FACTOR = 1e-4, 20.0


def portable_env() -> dict[str, str]:
    """This process's environment with the portable numerics (for `mtrl` subprocesses
    whose numbers are compared with a golden run's)."""
    return {**os.environ, **PORTABLE_NUMERICS, "PYTHONUNBUFFERED": "1"}


def fingerprint(env: dict[str, str]) -> dict[str, str]:
    """tests/numerics_probe.py's fingerprint in a fresh process with environment ``env``."""
    probe = [sys.executable, str(HERE / "numerics_probe.py")]
    out = subprocess.run(probe, env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


@functools.cache
def numerics_class() -> str:
    """This machine's numerics class on the portable path (tests/numerics_probe.py)."""
    return fingerprint(portable_env())["class"]


def records(name: str) -> list[str]:
    """The records golden run ``name`` has: ``default`` and numerics classes."""
    return sorted(p.parent.name for p in (GOLDEN_DIR / name).glob("*/metrics.csv"))


def record_dir(name: str) -> Path | None:
    """The record of ``name`` this machine compares with: its class's, else ``default``;
    None where it has neither."""
    have = records(name)
    for record in (numerics_class(), DEFAULT):
        if record in have:
            return GOLDEN_DIR / name / record
    return None


def has_own_records() -> bool:
    """Whether this machine's class has records of its own (then, as ``--add`` checked,
    its numbers equal ``default`` on every other run)."""
    cls = numerics_class()
    return any(cls in records(p.name) for p in GOLDEN_DIR.iterdir() if p.is_dir())


@functools.cache
def reproduces_default() -> bool:
    """Whether this machine computes ``default``'s numbers: the canary trained here equals
    its ``default`` record (that machine's fingerprint is unknown)."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / CANARY
        train(CANARY, None, run)
        want = GOLDEN_DIR / CANARY / DEFAULT
        return all((want / f).read_text() == t for f, t in _files(run).items())


def is_exact(record: Path) -> bool:
    """Whether this machine must reproduce ``record`` bit for bit (module docstring)."""
    if record.name != DEFAULT:
        return True
    return has_own_records() or reproduces_default()


def flat(files: dict[str, str]) -> dict[str, str]:
    """Every value of a record's files by where it is (``metrics.csv:row:column``,
    ``results.json:key.key[i]``), as text."""
    out: dict[str, str] = {}
    for i, row in enumerate(csv.DictReader(io.StringIO(files["metrics.csv"]))):
        out.update({f"metrics.csv:{i}:{k}": v for k, v in row.items()})

    def walk(where: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{where}.{k}", v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{where}[{i}]", v)
        else:
            out[where] = json.dumps(value)

    walk("results.json:", json.loads(files["results.json"]))
    return out


def drift(a: str, b: str) -> float:
    """How far apart two recorded values are: 0 for the same text, inf where either is
    not a number (or only one is NaN or infinite), else ``|a - b| / (1e-3 + max(|a|,
    |b|))`` (relative, and absolute for values under 1e-3 such as a converged loss)."""
    if a == b:
        return 0.0
    try:
        x, y = float(a), float(b)
    except ValueError:
        return math.inf
    if math.isnan(x) or math.isnan(y) or math.isinf(x) or math.isinf(y):
        return 0.0 if str(x) == str(y) else math.inf
    return abs(x - y) / (1e-3 + max(abs(x), abs(y)))


def largest_drift(a: dict[str, str], b: dict[str, str]) -> tuple[float, str]:
    """The largest drift between two flattened records, and where (inf if their
    structure differs)."""
    if a.keys() != b.keys():
        return math.inf, f"fields {sorted(a.keys() ^ b.keys())[:4]}"
    return max(((drift(a[k], b[k]), k) for k in a), default=(0.0, ""))


def record_files(record: Path) -> dict[str, str]:
    return {f: (record / f).read_text() for f in ("metrics.csv", "results.json")}


def tolerance(name: str) -> float:
    """Run ``name``'s tolerance on a machine of unknown kind: 20× the largest drift
    between its records (the moves one change of machine made), at least 1e-4."""
    recs = [flat(record_files(GOLDEN_DIR / name / r)) for r in records(name)]
    seen = [largest_drift(a, b)[0] for i, a in enumerate(recs) for b in recs[i + 1 :]]
    return max([TOLERANCE_FLOOR] + [TOLERANCE_FACTOR * d for d in seen])


def train(name: str, datasets: Path | None, run_dir: Path) -> None:
    """Train golden recipe ``name`` into ``run_dir`` with `mtrl train`, in a process of
    its own on the portable numerics."""
    from recipes import recipe_text

    recipe = run_dir.parent / f"{run_dir.name}.toml"
    recipe.write_text(recipe_text(name, datasets))
    cmd = [sys.executable, "-m", "mtrl.cli", "train", str(recipe), "--run-dir", str(run_dir)]
    done = subprocess.run(cmd, env=portable_env(), capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{name}: mtrl train exited {done.returncode}:\n{done.stderr}"


def metrics_text(run_dir: Path) -> str:
    """metrics.csv without its timing columns (wall clock differs run to run)."""
    with (run_dir / "metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = [k for k in (rows[0] if rows else {}) if k not in TIMING]
    out = io.StringIO()
    writer = csv.DictWriter(out, fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def results(run_dir: Path) -> Any:
    """summary.json's results, timing keys dropped."""
    doc = json.loads((run_dir / "summary.json").read_text())["results"]
    return {k: v for k, v in doc.items() if k not in TIMING}


def results_text(run_dir: Path) -> str:
    return json.dumps(results(run_dir), indent=1, sort_keys=True) + "\n"


def _files(run_dir: Path) -> dict[str, str]:
    return {"metrics.csv": metrics_text(run_dir), "results.json": results_text(run_dir)}


def record(names: list[str], add: bool = False) -> None:
    """Train each golden run here and keep it as this machine's class's record: in place
    of all its records (a change made on purpose), or with ``add`` beside them where it
    differs from ``default`` (refused for a run this class has a record of: adding must
    not overwrite the record a change is checked against)."""
    from recipes import GOLDEN, collect_datasets

    cls = numerics_class()
    names = names or list(GOLDEN)
    if add and (have := [n for n in names if cls in records(n)]):
        sys.exit(f"already recorded for numerics class {cls}: {', '.join(have)} (--add only adds)")
    with tempfile.TemporaryDirectory() as tmp:
        datasets = collect_datasets(Path(tmp) / "datasets")
        for name in names:
            run = Path(tmp) / name
            train(name, datasets, run)
            files, now = _files(run), record_dir(name)
            if (
                add
                and now is not None
                and all((now / f).read_text() == t for f, t in files.items())
            ):
                print(f"{name}: the same as its record {now.name}, nothing added", flush=True)
                continue
            if not add:
                for old in records(name):
                    shutil.rmtree(GOLDEN_DIR / name / old)
            out = GOLDEN_DIR / name / cls
            out.mkdir(parents=True, exist_ok=True)
            for file, text in files.items():
                (out / file).write_text(text)
            print(f"recorded {name} for numerics class {cls}", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    args = sys.argv[1:]
    record([a for a in args if a != "--add"], add="--add" in args)
