"""Recipes of `mtrl train`: the ``kind`` key of a TOML file picks the config class."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtrl.config import apply_overrides, from_dict, has_key, read_toml
from mtrl.errors import ConfigError, UnknownKeyError, UnknownNameError
from mtrl.runs import RunDir


@dataclass(frozen=True)
class RecipeKind:
    """A trainable kind, as its module declares it: the config class, the training
    entry point, the loader (``load(cfg, checkpoint state) -> (model, act)``, for
    ``mtrl.load``) and what the commands ask of it."""

    name: str
    config_cls: type
    train: Callable[..., dict[str, Any]]
    load: Callable[[Any, dict[str, Any]], tuple[Any, Any]]
    # `mtrl plot`: the x column and the default y columns of metrics.csv
    curves: tuple[str, list[str]]
    # a multi-task policy: `mtrl eval` evaluates it, `mtrl compare` compares it
    evaluates: bool
    # `mtrl adapt RUN_DIR` (meta-learning kinds): (run, cfg, steps, tasks,
    # pretrain_iterations, seed) -> the adaptation document
    adapt: Callable[..., dict[str, Any]] | None = None
    # results beside the per-task table (`mtrl eval`, `mtrl compare`):
    # (run, cfg, train_references, log) -> {section name: section}
    more_results: Callable[..., dict[str, Any]] | None = None
    # (section, cfg) -> text printed under `mtrl eval`'s table
    results_text: Callable[[dict[str, Any], Any], str] | None = None
    # `mtrl plot`'s plots beyond the curves: (run, cfg, task labels) -> paths
    plots: Callable[..., list[Path]] | None = None


# kind -> (module, config class, train function); imported only when used. Each module
# also has ``load_policy``, ``CURVES`` and ``EVALUATES``, and may have ``ADAPT``
# ("module:function"), ``more_results``, ``results_text`` and ``plots`` (RecipeKind).
KINDS: dict[str, tuple[str, str, str]] = {
    "sine": ("mtrl.kinds.sine", "RegressionRecipe", "train_regression"),
    "maml-rl": ("mtrl.kinds.maml_rl", "MetaRLRecipe", "train_meta_rl"),
    "rl2": ("mtrl.kinds.rl2", "RL2Recipe", "train_rl2"),
    "pearl": ("mtrl.kinds.pearl", "PEARLRecipe", "train_pearl"),
    "mtsac": ("mtrl.kinds.mtsac", "MTSACRecipe", "train_mtsac"),
    "mtppo": ("mtrl.kinds.mtppo", "MTPPORecipe", "train_mtppo"),
    "sb3": ("mtrl.kinds.sb3", "SB3Recipe", "train_sb3"),
    "continual": ("mtrl.kinds.continual", "ContinualRecipe", "train_continual"),
}


def recipe_kind(name: str) -> RecipeKind:
    """The kind called ``name``, or an UnknownNameError listing the known kinds."""
    if name not in KINDS:
        raise UnknownNameError(
            "recipe kind", name, KINDS, listing=f"The kinds are: {', '.join(sorted(KINDS))}."
        )
    module, cls, fn = KINDS[name]
    mod = importlib.import_module(module)
    optional = {k: getattr(mod, k, None) for k in ("more_results", "results_text", "plots")}
    adapt = getattr(mod, "ADAPT", None)  # "module:function", in a module of its own
    if adapt is not None:
        where, func = adapt.split(":")
        optional["adapt"] = getattr(importlib.import_module(where), func)
    return RecipeKind(
        name,
        getattr(mod, cls),
        getattr(mod, fn),
        mod.load_policy,
        mod.CURVES,
        mod.EVALUATES,
        **optional,
    )


def kinds_that(evaluate: bool) -> list[str]:
    """The kinds whose ``evaluates`` is ``evaluate`` (for error messages)."""
    return [k for k in KINDS if recipe_kind(k).evaluates == evaluate]


def parse_recipe(data: dict[str, Any], source: str) -> tuple[RecipeKind, Any]:
    """The kind and typed config of a recipe dict (``source`` names it in errors)."""
    kind_name = data.get("kind")
    if kind_name is None:
        raise ConfigError(
            f"{source}: missing key 'kind'; set kind = one of {', '.join(sorted(KINDS))}"
        )
    kind = recipe_kind(str(kind_name))
    try:
        return kind, from_dict(kind.config_cls, data)
    except UnknownKeyError as err:
        others = [
            k for k in KINDS if k != kind.name and has_key(recipe_kind(k).config_cls, err.key)
        ]
        if not others:
            raise
        raise ConfigError(
            f"{err} ({err.key} belongs to kind {' or '.join(repr(k) for k in others)}; "
            f"kind {kind.name!r} does not take it)"
        ) from None


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> tuple[RecipeKind, Any]:
    """Read a TOML recipe, apply ``--set`` overrides, and validate it."""
    return parse_recipe(apply_overrides(read_toml(path), overrides), str(path))


def default_run_dir(recipe_path: str | Path, root: str | Path = "runs") -> Path:
    """``runs/<recipe name>_<YYYYmmdd-HHMMSS>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{Path(recipe_path).stem}_{stamp}"


def load_run(run_dir: str | Path) -> tuple[RunDir, RecipeKind, Any]:
    """Reopen a run directory with its recipe (for resume, eval and adapt)."""
    run = RunDir.open(run_dir)
    kind, cfg = parse_recipe(read_toml(run.config_path), str(run.config_path))
    return run, kind, cfg
