"""Typed dataclass configs loaded from TOML recipes with strict validation.

A config class is a plain (frozen) dataclass. Field types drive validation: ``bool``,
``int``, ``float``, ``str``, ``Literal[...]`` (allowed values), ``X | None``, ``list[T]``,
``tuple[T, ...]``, ``dict[str, T]`` (a table passed on as is when ``T`` is ``Any``, e.g.
keyword arguments for another library, which checks them) and nested dataclasses.
Numeric bounds come from :func:`bounded`.
Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` naming
the dotted key and what is allowed, before any work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from mtrl.errors import ConfigError, UnknownKeyError

T = TypeVar("T")

_BOUNDS = "mtrl_bounds"


def bounded(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A dataclass field with numeric bounds checked when the config is loaded."""
    return dataclasses.field(default=default, metadata={_BOUNDS: (ge, gt, le, lt)})


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return f"a table ({tp.__name__})"
    if origin in (list, tuple):
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a table"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "absent"
    return getattr(tp, "__name__", str(tp))


def _check_bounds(key: str, value: float, bounds: tuple[float | None, ...]) -> None:
    ge, gt, le, lt = bounds
    bad = (
        (ge is not None and value < ge)
        or (gt is not None and value <= gt)
        or (le is not None and value > le)
        or (lt is not None and value >= lt)
    )
    if bad:
        parts = [
            f"{op} {b}" for op, b in ((">=", ge), (">", gt), ("<=", le), ("<", lt)) if b is not None
        ]
        raise ConfigError(f"{key} = {value!r} is out of range: it must be {' and '.join(parts)}")


def _convert(key: str, value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} = {value!r} has the wrong type: expected a table")
        _, elem = typing.get_args(tp)
        return {str(k): _convert(_join(key, str(k)), v, elem) for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):  # built in Python: it validated itself
            return value
        return from_dict(tp, value, prefix=key)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(
                f"{key} = {value!r} is not allowed; choose one of "
                + ", ".join(repr(a) for a in allowed)
            )
        return value
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(options) == 1:  # X | None: X's own error says what is wrong
            return _convert(key, value, options[0])
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            try:
                return _convert(key, value, arg)
            except ConfigError:
                continue
        raise ConfigError(f"{key} = {value!r} has the wrong type: expected {_describe(tp)}")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} = {value!r} has the wrong type: expected {_describe(tp)}")
        (elem,) = typing.get_args(tp)[:1]
        items = [_convert(f"{key}[{i}]", v, elem) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} = {value!r} has the wrong type: expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} = {value!r} has the wrong type: expected an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} = {value!r} has the wrong type: expected a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} = {value!r} has the wrong type: expected a string")
        return value
    raise TypeError(f"config field {key} has unsupported type {tp!r}")  # programming error


def from_dict(cls: type[T], data: Any, *, prefix: str = "") -> T:
    """Build the dataclass ``cls`` from a mapping, validating every key and value."""
    where = prefix or "the recipe"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a table of keys, got {data!r}")
    assert dataclasses.is_dataclass(cls)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    moved: Mapping[str, str] = getattr(cls, "moved_keys", {})
    for key in data:
        if key in moved and key not in fields:
            raise ConfigError(f"{_join(prefix, key)!r} has moved: it is now {moved[key]}")
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UnknownKeyError(
                _join(prefix, key),
                f"unknown key {_join(prefix, key)!r}.{hint} Allowed keys in {where}: "
                + ", ".join(sorted(fields)),
            )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = _join(prefix, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing required key {key!r} ({_describe(hints[name])})")
            continue
        given = data[name]
        if f.default_factory is not dataclasses.MISSING and isinstance(given, Mapping):
            default = f.default_factory()
            if dataclasses.is_dataclass(default):
                # a partial table changes only the keys it names: the rest keep this
                # field's own defaults (e.g. a recipe's network sizes), not the class's
                given = _merge(_as_table(default), given)
        value = _convert(key, given, hints[name])
        bounds = f.metadata.get(_BOUNDS)
        if bounds is not None and isinstance(value, int | float):
            _check_bounds(key, value, bounds)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ValueError as exc:  # cross-field checks in __post_init__
        raise ConfigError(f"{where}: {exc}") from exc


def has_key(cls: type, dotted: str) -> bool:
    """Whether the config class ``cls`` has the (dotted) key, through nested tables."""
    name, _, rest = dotted.partition(".")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    if name not in fields:
        return False
    if not rest:
        return True
    tp = typing.get_type_hints(cls)[name]
    options = [tp, *typing.get_args(tp)]
    tables = [t for t in options if dataclasses.is_dataclass(t) and isinstance(t, type)]
    return any(has_key(t, rest) for t in tables)


def check_fields(obj: Any, prefix: str = "") -> None:
    """Validate a config dataclass built in Python as :func:`from_dict` validates TOML:
    types, allowed values and bounds of every field (call it from ``__post_init__``).
    Nested dataclass values validated themselves when they were built."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) or (value is None and _optional(hints[f.name])):
            continue
        key = _join(prefix, f.name)
        _convert(key, value, hints[f.name])
        bounds = f.metadata.get(_BOUNDS)
        if bounds is not None and isinstance(value, int | float) and not isinstance(value, bool):
            _check_bounds(key, value, bounds)


def _optional(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def _as_table(cfg: Any) -> dict[str, Any]:
    """A dataclass instance as nested dicts (None values left out, as in TOML)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if value is None or not f.init:
            continue
        out[f.name] = _as_table(value) if dataclasses.is_dataclass(value) else value
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as a TOML-ready dict (``None`` values are left out, as TOML has no null)."""

    def clean(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items() if v is not None}
        if isinstance(obj, list | tuple):
            return [clean(v) for v in obj]
        return obj

    return typing.cast(dict[str, Any], clean(dataclasses.asdict(cfg)))


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b=value`` (value as a TOML literal, else a bare string)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r} must look like key=value, e.g. --set seed=3")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"--set {text!r} has an empty key")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``key=value`` overrides applied (dotted keys nest);
    ``~key`` removes a key or table (as Hydra's overrides do), e.g. ``~demos.bc``."""
    out: dict[str, Any] = _deepcopy(data)
    for text in overrides:
        if text.startswith("~"):
            _remove(out, text)
            continue
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is a value, not a table")
            node = child
        node[path[-1]] = value
    return out


def _remove(data: dict[str, Any], text: str) -> None:
    path = [p for p in text[1:].strip().split(".") if p]
    node: Any = data
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if not path or not isinstance(node, dict) or path[-1] not in node:
        raise ConfigError(f"--set {text!r}: the recipe has no key {text[1:]!r} to remove")
    del node[path[-1]]


def _deepcopy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deepcopy(v) if isinstance(v, dict) else v for k, v in d.items()}


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, turning a missing file or a syntax error into a ConfigError."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"recipe file {str(p)!r} does not exist; check the path")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"recipe {str(p)!r} is not valid TOML: {exc}") from exc


def load_config(cls: type[T], path: str | Path, overrides: Sequence[str] = ()) -> T:
    """Load a TOML recipe into ``cls``, applying ``--set key=value`` overrides first."""
    return from_dict(cls, apply_overrides(read_toml(path), overrides))


def write_toml(path: str | Path, cfg: Any) -> None:
    """Write a config dataclass as TOML."""
    Path(path).write_text(tomli_w.dumps(to_dict(cfg)))
