"""Byte snapshots of live environments, for checkpoints that resume exactly.

Plain pickling does not capture a running gymnasium env: MuJoCo envs pickle through
``EzPickle`` (which re-creates a fresh env from the constructor arguments) and
Meta-World's through its own ``__getstate__`` (positions and velocities only). The
snapshot pickles their attribute dictionaries instead: physics (``MjData``), RNGs,
time-limit counters and wrapper accumulators all come back as they were. Objects
that belong to the caller (a curriculum the env consults) are stored by reference
and re-attached at :func:`restore`.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from typing import Any

from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
from gymnasium.utils.ezpickle import EzPickle


def _blank(cls: type) -> Any:
    return object.__new__(cls)


def _set_attributes(obj: Any, state: dict[str, Any]) -> None:
    obj.__dict__.update(state)


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, external: Mapping[str, Any]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._external = {id(obj): key for key, obj in external.items()}

    def persistent_id(self, obj: Any) -> str | None:
        return self._external.get(id(obj))

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (EzPickle, MujocoEnv)):
            return (_blank, (type(obj),), dict(obj.__dict__), None, None, _set_attributes)
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, external: Mapping[str, Any]) -> None:
        super().__init__(file)
        self._external = external

    def persistent_load(self, pid: Any) -> Any:
        return self._external[pid]


def snapshot(obj: Any, external: Mapping[str, Any] | None = None) -> bytes:
    """``obj`` (envs, wrappers, vector envs) as bytes; ``external`` objects by name."""
    buf = io.BytesIO()
    _Pickler(buf, external or {}).dump(obj)
    return buf.getvalue()


def restore(blob: bytes, external: Mapping[str, Any] | None = None) -> Any:
    """The object of :func:`snapshot`, with ``external`` objects re-attached by name."""
    return _Unpickler(io.BytesIO(blob), external or {}).load()
