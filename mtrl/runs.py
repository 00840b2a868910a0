"""Run directories: resolved config, metrics, summary (seed + versions), checkpoints, plots.

Layout of a run directory::

    config.toml     the resolved config the run was started with
    metrics.csv     one row per logged step (columns grow as new keys appear)
    summary.json    final per-task numbers, seed, package versions
    checkpoints/    resumable state (``step_<N>.pt``), written atomically
    plots/          PNG figures
    .lock           held (flock) by the one process writing the run
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import tomli_w

from mtrl.config import to_dict
from mtrl.errors import RunDirError
from mtrl.tboard import EventLog, row_step

_VERSIONED = (
    "mtrl-suite",
    "torch",
    "gymnasium",
    "mujoco",
    "metaworld",
    "stable-baselines3",
    "numpy",
)


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a run's numbers (missing ones as 'absent')."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to a temp file, fsync it, rename it over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def strict_json(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None and numpy values as Python ones, so
    that strict JSON parsers read it."""
    if isinstance(obj, Mapping):
        return {str(k): strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return strict_json(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def dump_json(obj: Any) -> str:
    """Strict JSON text (NaN -> null), indented."""
    return json.dumps(strict_json(obj), indent=2, allow_nan=False) + "\n"


class RunLock:
    """An exclusive OS lock on ``<run>/.lock`` for the life of the process holding it
    (released by the OS when the process dies, even by kill -9)."""

    def __init__(
        self,
        path: Path,
        note: str = "",
        advice: str = "wait for it to finish or stop it, or pick another --run-dir",
    ) -> None:
        import fcntl

        self.path = path
        self._fh = path.open("a+")
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "unknown"
            self._fh.close()
            raise RunDirError(
                f"{str(path.parent)!r} is being written by another process (pid {holder}); {advice}"
            ) from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"{os.getpid()}{f': {note}' if note else ''}")  # who holds it
        self._fh.flush()

    def release(self) -> None:
        import fcntl

        if not self._fh.closed:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()


_HELD: dict[str, RunLock] = {}  # run directories this process holds the lock of


def warn(message: str) -> None:
    """A warning on stderr in the CLI's voice."""
    print(f"mtrl: warning: {message}", file=sys.stderr)


class RunDir:
    """A run directory on disk. Create with :meth:`create`, reopen with :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock: RunLock | None = None
        self.loaded_checkpoint: Path | None = None  # what load_checkpoint last read
        self.events = EventLog(path)  # TensorBoard scalars of every metrics row
        # called with each metrics row (a progress line shows the latest return/success)
        self.watchers: list[Callable[[Mapping[str, Any]], None]] = []

    def acquire(self) -> None:
        """Hold the run's lock (one writer per run directory) until the process ends
        or :meth:`release`. The lock keeps other processes out; within this process a
        later run on the same directory (train, then resume) takes the held lock over."""
        if self.lock is None:
            key = str(self.path.resolve())
            held = _HELD.get(key)
            if held is None:
                held = _HELD[key] = RunLock(self.path / ".lock")
            self.lock = held

    def release(self) -> None:
        self.events.close()
        if self.lock is not None:
            _HELD.pop(str(self.path.resolve()), None)
            self.lock.release()
            self.lock = None

    @property
    def config_path(self) -> Path:
        return self.path / "config.toml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @classmethod
    def create(cls, path: str | Path, config: Any, *, exist_ok: bool = False) -> RunDir:
        """Make a new run directory holding ``config`` (a config dataclass).

        Refuses to reuse a directory that already holds a run unless ``exist_ok``
        (resuming), so that nothing already written is lost.
        """
        p = Path(path)
        if (p / "config.toml").exists() and not exist_ok:
            raise RunDirError(
                f"{str(p)!r} already holds a run; pick another --run-dir, delete it, or resume it"
            )
        if p.exists() and not p.is_dir():
            raise RunDirError(f"{str(p)!r} is a file, not a directory; pick another --run-dir")
        if p.is_dir() and not (p / "config.toml").exists() and not cls.unstarted(p):
            raise RunDirError(
                f"{str(p)!r} is not empty and holds no run (no config.toml); a new run "
                "needs an empty or new directory: pick another --run-dir"
            )
        try:
            p.mkdir(parents=True, exist_ok=True)
            probe = p / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise RunDirError(
                f"cannot write the run directory {str(p)!r} ({exc.strerror or exc}); "
                "pick a writable --run-dir"
            ) from None
        run = cls(p)
        run.checkpoints.mkdir(exist_ok=True)
        run.plots.mkdir(exist_ok=True)
        if not run.config_path.exists():  # whole or absent, even if killed meanwhile
            _atomic_write(run.config_path, tomli_w.dumps(to_dict(config)))
        return run

    @staticmethod
    def unstarted(path: Path) -> bool:
        """Whether ``path`` is empty or holds only what :meth:`create` makes before a
        run's config.toml (a process killed right then leaves it): a new run may take it."""
        scaffold = {".lock", ".write-test", "config.toml.tmp", "checkpoints", "plots"}
        for entry in path.iterdir():
            if entry.name not in scaffold or (entry.is_dir() and any(entry.iterdir())):
                return False
        return True

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """Open an existing run directory (it must hold a ``config.toml``)."""
        p = Path(path)
        if not (p / "config.toml").is_file():
            raise RunDirError(
                f"{str(p)!r} is not a run directory (no config.toml); pass a directory "
                "made by `mtrl train` or `mtrl envs rollout --run-dir`"
            )
        return cls(p)

    def log_metrics(self, row: Mapping[str, Any]) -> None:
        """Append one row to ``metrics.csv`` (new columns rewrite the header in place)
        and to the TensorBoard events."""
        self._append_csv(row)
        self.events.write(row)
        for watch in self.watchers:
            watch(row)

    def _append_csv(self, row: Mapping[str, Any]) -> None:
        rows: list[dict[str, Any]] = []
        fields: list[str] = []
        if self.metrics_path.exists():
            with self.metrics_path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                fields = list(reader.fieldnames or [])
                if any(k not in fields for k in row):
                    rows = list(reader)
        new_fields = fields + [k for k in row if k not in fields]
        if new_fields != fields and fields:
            rows.append(dict(row))
            text_rows = [new_fields] + [[r.get(k, "") for k in new_fields] for r in rows]
            tmp = self.metrics_path.with_suffix(".csv.tmp")
            with tmp.open("w", newline="") as fh:
                csv.writer(fh).writerows(text_rows)
            os.replace(tmp, self.metrics_path)
            return
        with self.metrics_path.open("a", newline="") as fh:
            writer = csv.writer(fh)
            if not fields:
                writer.writerow(new_fields)
            writer.writerow([row.get(k, "") for k in new_fields])

    def metric_rows(self) -> int:
        """How many rows ``metrics.csv`` holds (a checkpoint records it)."""
        if not self.metrics_path.exists():
            return 0
        with self.metrics_path.open(newline="") as fh:
            return max(0, sum(1 for _ in csv.reader(fh)) - 1)

    def truncate_metrics(self, rows: int) -> int:
        """Keep the first ``rows`` rows of ``metrics.csv`` (a resume rolls back the rows
        written after its checkpoint); returns how many were dropped."""
        if not self.metrics_path.exists():
            return 0
        with self.metrics_path.open(newline="") as fh:
            table = list(csv.reader(fh))
        kept = [dict(zip(table[0], r, strict=False)) for r in table[1 : rows + 1]] if table else []
        steps = [row_step({k: _num(v) for k, v in r.items()}, -1) for r in kept]
        self.events.purge_from(max(steps, default=-1) + 1)
        dropped = max(0, len(table) - 1 - rows)
        if dropped:
            tmp = self.metrics_path.with_suffix(".csv.tmp")
            with tmp.open("w", newline="") as fh:
                csv.writer(fh).writerows(table[: rows + 1])
            os.replace(tmp, self.metrics_path)
        return dropped

    def read_metrics(self) -> list[dict[str, str]]:
        if not self.metrics_path.exists():
            return []
        with self.metrics_path.open(newline="") as fh:
            return list(csv.DictReader(fh))

    def write_summary(self, *, seed: int, results: Mapping[str, Any], **extra: Any) -> None:
        """Write ``summary.json`` with the seed, package versions and final results."""
        doc = {"seed": seed, "versions": package_versions(), **extra, "results": results}
        _atomic_write(self.summary_path, dump_json(doc))

    def read_summary(self) -> dict[str, Any]:
        if not self.summary_path.is_file():
            raise RunDirError(
                f"{str(self.path)!r} has no summary.json yet: the run has not finished"
            )
        return dict(json.loads(self.summary_path.read_text()))

    def save_checkpoint(self, state: Mapping[str, Any], step: int, keep: int | None = None) -> Path:
        """Save ``state`` (anything ``torch.save`` takes) as ``checkpoints/step_<step>.pt``
        with the number of metrics rows written so far: written to a temp file,
        fsynced, renamed; then only the newest ``keep`` stay."""
        import torch

        state = {"metric_rows": self.metric_rows(), **state}  # a resume rolls back to it
        target = self.checkpoints / f"step_{step}.pt"
        tmp = target.with_name(target.name + ".tmp")
        with tmp.open("wb") as fh:
            torch.save(dict(state), fh)
            fh.flush()
            os.fsync(fh.fileno())
        _atomic_write(_digest_path(target), _digest(tmp) + "\n")  # before the rename
        os.replace(tmp, target)
        _fsync_dir(self.checkpoints)
        if keep is not None:
            for old in self.checkpoint_paths()[keep:]:
                old.unlink(missing_ok=True)
                _digest_path(old).unlink(missing_ok=True)
        return target

    def checkpoint_paths(self) -> list[Path]:
        """Checkpoints, newest first."""
        found = []
        for p in self.checkpoints.glob("step_*.pt"):
            m = re.fullmatch(r"step_(\d+)\.pt", p.name)
            if m:
                found.append((int(m.group(1)), p))
        return [p for _, p in sorted(found, reverse=True)]

    def latest_checkpoint(self) -> Path:
        """Path of the newest checkpoint, or a RunDirError saying there is none."""
        paths = self.checkpoint_paths()
        if not paths:
            raise RunDirError(
                f"no checkpoint in {str(self.checkpoints)!r}; "
                "start the run afresh instead of resuming"
            )
        return paths[0]

    def load_checkpoint(self, path: Path | None = None) -> dict[str, Any]:
        """The checkpoint at ``path``, or the newest intact one: a corrupt newer one is
        reported (a warning naming it) and the one before it used."""
        if path is not None:
            if not path.is_file():
                raise RunDirError(f"checkpoint {str(path)!r} does not exist")
            state = _read_checkpoint(path)
            self.loaded_checkpoint = path
            return state
        paths = self.checkpoint_paths()
        if not paths:
            self.latest_checkpoint()  # raises: none at all
        for i, candidate in enumerate(paths):
            try:
                state = _read_checkpoint(candidate)
            except RunDirError as exc:
                later = paths[i + 1] if i + 1 < len(paths) else None
                fallback = f"using {later.name}" if later else "no older checkpoint is left"
                warn(f"{exc}; {fallback}")
            else:
                self.loaded_checkpoint = candidate
                return state
        raise RunDirError(
            f"every checkpoint in {str(self.checkpoints)!r} is corrupt; start the run afresh "
            "(delete the run directory or pick another --run-dir)"
        )


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _digest_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".sha256")


def _digest(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's state; its bytes checked against the digest written beside it
    (flipped bytes inside the weights would otherwise load without a word)."""
    import torch

    digest = _digest_path(path)
    if digest.is_file() and digest.read_text().strip() != _digest(path):
        raise RunDirError(
            f"checkpoint {str(path)!r} is corrupt: its bytes do not match {digest.name} "
            "(the disk or a copy changed them)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds for truncated or foreign files
        raise RunDirError(
            f"checkpoint {str(path)!r} is corrupt or unreadable ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})"
        ) from None
    if not isinstance(state, dict):
        raise RunDirError(f"checkpoint {str(path)!r} does not hold an mtrl training state")
    return dict(state)


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
