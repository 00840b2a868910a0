"""Byte snapshots of live environments, for checkpoints that resume exactly.

Plain pickling does not capture a running gymnasium env: MuJoCo envs pickle through
``EzPickle`` (which re-creates a fresh env from the constructor arguments) and
Meta-World's through its own ``__getstate__`` (positions and velocities only). The
snapshot pickles their attribute dictionaries instead: physics (``MjData``), RNGs,
time-limit counters and wrapper accumulators all come back as they were, and
attributes that are views into the physics data stay views. MuJoCo models and data
are stored compactly (:mod:`mtrl.envs.mjstate`: a model by its XML file and the values
a task may change, not its meshes). Objects
that belong to the caller (a curriculum the env consults) are stored by reference
and re-attached at :func:`restore`.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from typing import Any, NamedTuple

import mujoco
import numpy as np
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
from gymnasium.utils.ezpickle import EzPickle

from mtrl.envs import mjstate

_DATA_FIELDS = (
    "qpos", "qvel", "qacc", "act", "ctrl", "mocap_pos", "mocap_quat", "xpos", "xquat",
    "xmat", "xipos", "site_xpos", "site_xmat", "geom_xpos", "geom_xmat", "sensordata",
    "subtree_com", "cvel",
)  # fmt: skip


class _DataView(NamedTuple):
    """An attribute that is a view into the env's ``MjData`` (Meta-World keeps some, e.g.
    the gripper pads' positions): re-made as a view of the restored data, not a copy."""

    field: str
    offset: int  # elements from the field's start
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def _data_view(value: np.ndarray, data: Any) -> _DataView | None:
    for field in _DATA_FIELDS:
        base = getattr(data, field, None)
        if isinstance(base, np.ndarray) and base.size and np.shares_memory(value, base):
            start = value.__array_interface__["data"][0] - base.__array_interface__["data"][0]
            return _DataView(field, start // base.itemsize, value.shape, value.strides)
    return None


def _blank(cls: type) -> Any:
    return object.__new__(cls)


def _set_attributes(obj: Any, state: dict[str, Any]) -> None:
    obj.__dict__.update(state)
    data = state.get("data")
    for name, value in state.items():
        if isinstance(value, _DataView):
            flat = getattr(data, value.field).reshape(-1)[value.offset :]
            view = np.lib.stride_tricks.as_strided(flat, value.shape, value.strides)
            setattr(obj, name, view)


def _attributes(obj: Any) -> dict[str, Any]:
    state = dict(obj.__dict__)
    data = state.get("data")
    if data is not None:
        for name, value in state.items():
            if isinstance(value, np.ndarray) and name != "data":
                view = _data_view(value, data)
                if view is not None:
                    state[name] = view
    return state


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, external: Mapping[str, Any]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._external = {id(obj): key for key, obj in external.items()}
        self._model_files: dict[int, str] = {}  # id(MjModel) -> the XML it came from

    def persistent_id(self, obj: Any) -> str | None:
        return self._external.get(id(obj))

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (EzPickle, MujocoEnv)):
            model, path = getattr(obj, "model", None), getattr(obj, "fullpath", None)
            if isinstance(model, mujoco.MjModel) and isinstance(path, str):
                self._model_files[id(model)] = path
            return (_blank, (type(obj),), _attributes(obj), None, None, _set_attributes)
        if isinstance(obj, mujoco.MjModel):
            state = mjstate.model_state(obj, self._model_files.get(id(obj)))
            if state is None:
                return NotImplemented  # not its file's model: pickled whole
            return (mjstate.load_model, (state["path"],), state, None, None, mjstate.set_model)
        if isinstance(obj, mujoco.MjData):
            state = mjstate.data_state(obj)
            return (mjstate.new_data, (obj.model,), state, None, None, mjstate.set_data)
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
