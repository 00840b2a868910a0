"""Run directories: resolved config, metrics, summary (seed + versions), checkpoints, plots.

Layout of a run directory::

    config.toml     the resolved config the run was started with
    metrics.csv     one row per logged step (columns grow as new keys appear)
    summary.json    final per-task numbers, seed, package versions
    checkpoints/    resumable state (``step_<N>.pt``), written atomically
    plots/          PNG figures
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import platform
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtrl.config import write_toml
from mtrl.errors import RunDirError

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


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunDir:
    """A run directory on disk. Create with :meth:`create`, reopen with :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = path

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
        p.mkdir(parents=True, exist_ok=True)
        run = cls(p)
        run.checkpoints.mkdir(exist_ok=True)
        run.plots.mkdir(exist_ok=True)
        if not run.config_path.exists():
            write_toml(run.config_path, config)
        return run

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
        """Append one row to ``metrics.csv``; new columns rewrite the header in place."""
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

    def read_metrics(self) -> list[dict[str, str]]:
        if not self.metrics_path.exists():
            return []
        with self.metrics_path.open(newline="") as fh:
            return list(csv.DictReader(fh))

    def write_summary(self, *, seed: int, results: Mapping[str, Any], **extra: Any) -> None:
        """Write ``summary.json`` with the seed, package versions and final results."""
        doc = {"seed": seed, "versions": package_versions(), **extra, "results": results}
        _atomic_write(self.summary_path, json.dumps(doc, indent=2, default=_jsonable) + "\n")

    def read_summary(self) -> dict[str, Any]:
        if not self.summary_path.is_file():
            raise RunDirError(
                f"{str(self.path)!r} has no summary.json yet: the run has not finished"
            )
        return dict(json.loads(self.summary_path.read_text()))

    def save_checkpoint(self, state: Mapping[str, Any], step: int) -> Path:
        """Save ``state`` (anything ``torch.save`` takes) as ``checkpoints/step_<step>.pt``."""
        import torch

        target = self.checkpoints / f"step_{step}.pt"
        tmp = target.with_name(target.name + ".tmp")
        torch.save(dict(state), tmp)
        os.replace(tmp, target)
        return target

    def latest_checkpoint(self) -> Path:
        """Path of the newest checkpoint, or a RunDirError saying there is none."""
        found = []
        for p in self.checkpoints.glob("step_*.pt"):
            m = re.fullmatch(r"step_(\d+)\.pt", p.name)
            if m:
                found.append((int(m.group(1)), p))
        if not found:
            raise RunDirError(
                f"no checkpoint in {str(self.checkpoints)!r}; "
                "start the run afresh instead of resuming"
            )
        return max(found)[1]

    def load_checkpoint(self, path: Path | None = None) -> dict[str, Any]:
        import torch

        target = path or self.latest_checkpoint()
        if not target.is_file():
            raise RunDirError(f"checkpoint {str(target)!r} does not exist")
        return dict(torch.load(target, map_location="cpu", weights_only=False))


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
