"""Compact pickling of MuJoCo models and data, for env snapshots.

MuJoCo pickles an ``MjModel`` whole (meshes, textures and collision trees: ~21 MB for a
Meta-World arm) and every ``MjData`` with its own copy of the model, so a snapshot of
MT10's envs was ~430 MB. Here a model loaded from an XML file is stored as the file's
path, the digests of its large arrays (checked when it is loaded back, and before: a
model whose large arrays differ from the file's is pickled whole) and the values of
everything else (sizes, physics parameters a task may change, options), and its data
as every array outside MuJoCo's per-step arena (state, controls, warm start, positions
and forces of the last step) and the time; the arena (contacts, constraints, islands)
is rebuilt by the next step. MT10's ten envs snapshot to 2.6 MB (~0.26 MB each).
"""

from __future__ import annotations

import functools
import zlib
from typing import Any

import mujoco
import numpy as np

from mtrl.errors import ConfigError

LARGE = 64 * 1024  # bytes: model arrays above this come from the XML file


def _arrays(obj: Any) -> dict[str, np.ndarray]:
    out = {}
    for name in dir(obj):
        if not name.startswith("_"):
            value = getattr(obj, name, None)
            if isinstance(value, np.ndarray):
                out[name] = value
    return out


def _struct(obj: Any) -> dict[str, Any]:
    """The fields of a MuJoCo struct (``opt``, ``vis``, ``stat``), nested structs as dicts."""
    out: dict[str, Any] = {}
    for name in dir(obj):
        if name.startswith("_"):
            continue
        value = getattr(obj, name)
        if isinstance(value, np.ndarray):
            out[name] = value.copy()
        elif isinstance(value, (bool, int, float)):
            out[name] = value
        elif not callable(value):
            out[name] = _struct(value)
    return out


def _set_struct(obj: Any, state: dict[str, Any]) -> None:
    for name, value in state.items():
        if isinstance(value, np.ndarray):
            getattr(obj, name)[...] = value
        elif isinstance(value, dict):
            _set_struct(getattr(obj, name), value)
        else:
            setattr(obj, name, value)


def _digests(model: mujoco.MjModel) -> dict[str, tuple[tuple[int, ...], int]]:
    """The model's sizes (``nbody``, ``nmeshvert``, ...) and its large arrays' CRCs."""
    sizes = tuple(v for n in dir(model) if n[0] == "n" and isinstance(v := getattr(model, n), int))
    out = {"sizes": (sizes, 0)}
    for name, a in _arrays(model).items():
        if a.nbytes > LARGE:
            out[name] = (a.shape, zlib.crc32(np.ascontiguousarray(a).data))
    return out


@functools.lru_cache(maxsize=256)
def _file_digests(path: str) -> dict[str, tuple[tuple[int, ...], int]]:
    return _digests(mujoco.MjModel.from_xml_path(path))


def load_model(path: str) -> mujoco.MjModel:
    """The model of the XML file ``path`` (its values are set by :func:`set_model`)."""
    try:
        return mujoco.MjModel.from_xml_path(path)
    except (ValueError, OSError) as exc:
        raise ConfigError(
            f"the snapshot's MuJoCo model file {path} cannot be loaded ({exc}); "
            "resume where the env's assets are installed"
        ) from exc


def model_state(model: mujoco.MjModel, path: str | None) -> dict[str, Any] | None:
    """What :func:`set_model` needs to turn ``load_model(path)`` into ``model``; None
    when ``model`` is not the file's (its large arrays differ, or no file)."""
    if not path:
        return None
    digests = _digests(model)
    try:
        if digests != _file_digests(path):
            return None
    except (ValueError, OSError):
        return None
    small = {n: a.copy() for n, a in _arrays(model).items() if a.nbytes <= LARGE}
    structs = {s: _struct(getattr(model, s)) for s in ("opt", "vis", "stat")}
    return {"path": path, "digests": digests, "arrays": small, "structs": structs}


def set_model(model: mujoco.MjModel, state: dict[str, Any]) -> None:
    """Give ``model`` (loaded from ``state["path"]``) the snapshot's values."""
    if _digests(model) != state["digests"]:
        raise ConfigError(
            f"the MuJoCo model file {state['path']} changed since the snapshot was "
            "taken (its meshes or sizes differ); resume with the assets it was taken with"
        )
    for name, value in state["arrays"].items():
        getattr(model, name)[...] = value
    for name, value in state["structs"].items():
        _set_struct(getattr(model, name), value)


def new_data(model: mujoco.MjModel) -> mujoco.MjData:
    """Blank data of ``model`` (filled by :func:`set_data`)."""
    return mujoco.MjData(model)


def _in_arena(name: str) -> bool:
    """Whether MuJoCo keeps the ``MjData`` field in its per-step arena (constraints,
    contacts, islands: mjxmacro.h's MJDATA_ARENA_POINTERS), rebuilt by the next step."""
    return name.startswith("efc_") or "island" in name or name in ("contact", "tendon_efcadr")


def data_state(data: mujoco.MjData) -> dict[str, Any]:
    """Every array of ``data`` outside the per-step arena, and the time."""
    arrays = {n: a.copy() for n, a in _arrays(data).items() if not _in_arena(n)}
    return {"time": data.time, "arrays": arrays}


def set_data(data: mujoco.MjData, state: dict[str, Any]) -> None:
    data.time = state["time"]
    for name, value in state["arrays"].items():
        getattr(data, name)[...] = value
