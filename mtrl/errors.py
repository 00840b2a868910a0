"""Typed errors whose messages say what went wrong and how to fix it."""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable


class MtrlError(Exception):
    """Base class of every error mtrl raises on purpose."""


class ConfigError(MtrlError, ValueError):
    """A recipe or config value is missing, unknown, of the wrong type or out of range."""


class UnknownKeyError(ConfigError):
    """A recipe key no field of its table has; ``key`` is its dotted name."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # crosses process pools
        return type(self), (self.key, str(self))


class UnknownNameError(MtrlError, KeyError):
    """A name (env, family, suite, task) is not known; the message lists close matches."""

    def __init__(
        self, kind: str, name: str, known: Iterable[str], listing: str | None = None
    ) -> None:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        if not close:
            low = name.lower()
            close = [k for k in known if low in k.lower() or k.lower() in low][:5]
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        if listing is None:
            listing = f"Run `mtrl envs list` to see all {len(known)} known names."
        self.message = f"unknown {kind} {name!r}.{hint} {listing}"
        self._made = (kind, name, known, listing)
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type, tuple[str, str, list[str], str]]:
        return type(self), self._made


class RunDirError(MtrlError):
    """A run directory is missing, incomplete, or would overwrite existing work."""


class TrainingDivergedError(MtrlError):
    """A loss became NaN or infinite; the message says where, and what to try."""


class DiskFullError(RunDirError):
    """No space left where a run writes; what it checkpointed is intact."""


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` or an exception it came from is a full disk (ENOSPC), also where a
    library wrapped it (torch.save raises a RuntimeError over it)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
