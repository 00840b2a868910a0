"""Where demonstration datasets live and what they are called (Minari ids)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_ROOT = "datasets"
DATASET_ID = re.compile(r"^[\w.-]+/[\w.-]+-v\d+$")  # Minari's namespace/name-vN


def dataset_id(name: str, policy: str, tasks: list[str] | None = None) -> str:
    """``mtrl/mt10-expert-v0`` (``mtrl/mt10-3tasks-expert-v0`` for a subset of the
    suite's tasks): Minari's ``namespace/name-vN`` form."""
    label = "expert" if policy == "expert" else Path(policy).name
    subset = f"-{len(tasks)}tasks" if tasks else ""
    slug = re.sub(r"[^a-z0-9]+", "-", f"{name}{subset}-{label}".lower()).strip("-")
    return f"mtrl/{slug}-v0"


@contextmanager
def datasets_root(root: str | Path) -> Iterator[Path]:
    """Point Minari at ``root`` (its ``MINARI_DATASETS_PATH``) for the block."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    path = Path(root).resolve()
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old
