from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from mtrl.config import bounded, from_dict, load_config, read_toml, write_toml
from mtrl.envs.rollout_run import RolloutConfig
from mtrl.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    lr: float = bounded(1e-3, gt=0.0)
    sizes: list[int] = field(default_factory=lambda: [64, 64])


@dataclass(frozen=True)
class Outer:
    name: str
    mode: Literal["a", "b"] = "a"
    steps: int = bounded(10, ge=1)
    limit: int | None = None
    inner: Inner = field(default_factory=Inner)


def test_valid_nested_config_loads_with_defaults() -> None:
    cfg = from_dict(Outer, {"name": "x", "inner": {"lr": 3, "sizes": [8]}})
    assert cfg == Outer(name="x", inner=Inner(lr=3.0, sizes=[8]))
    assert isinstance(cfg.inner.lr, float)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"name": "x", "stpes": 3}, "unknown key 'stpes'. Did you mean steps?"),
        ({"name": "x", "inner": {"lrr": 1.0}}, "unknown key 'inner.lrr'"),
        ({"name": "x", "steps": "3"}, "steps = '3' has the wrong type: expected an integer"),
        ({"name": "x", "steps": True}, "steps = True has the wrong type"),
        ({"name": "x", "steps": 0}, "steps = 0 is out of range: it must be >= 1"),
        ({"name": "x", "inner": {"lr": 0.0}}, "inner.lr = 0.0 is out of range: it must be > 0.0"),
        ({"name": "x", "mode": "c"}, "mode = 'c' is not allowed; choose one of 'a', 'b'"),
        ({"name": "x", "inner": {"sizes": [1, "2"]}}, "inner.sizes[1]"),
        ({}, "missing required key 'name'"),
        ({"name": "x", "inner": 3}, "inner must be a table"),
    ],
)
def test_bad_values_name_the_key_and_the_fix(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_dict(Outer, data)
    assert needle in str(err.value)


def test_cross_field_check_becomes_config_error() -> None:
    with pytest.raises(ConfigError, match="num_tasks = 0 must be >= 1"):
        from_dict(RolloutConfig, {"env": {"num_tasks": 0}})


def test_recipe_file_with_overrides_and_round_trip(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('policy = "expert"\n[env]\nname = "MT10"\n')
    cfg = load_config(RolloutConfig, recipe, ["seed=7", "env.envs_per_task=2", "env.name=cartpole"])
    assert (cfg.seed, cfg.policy, cfg.env.envs_per_task, cfg.env.name) == (
        7,
        "expert",
        2,
        "cartpole",
    )
    out = tmp_path / "out.toml"
    write_toml(out, cfg)
    assert load_config(RolloutConfig, out) == cfg


def test_missing_and_malformed_recipe_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_toml(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 3\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        read_toml(bad)
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="must look like key=value"):
        load_config(RolloutConfig, empty, ["seed"])


def test_partial_nested_table_keeps_the_fields_own_defaults() -> None:
    from mtrl.kinds.continual import ContinualRecipe
    from mtrl.kinds.mtppo import MTPPORecipe

    ppo = from_dict(MTPPORecipe, {"ppo": {"actor": {"arch": "multihead"}}})
    assert ppo.ppo.actor.hidden == [64, 64] and ppo.ppo.actor.activation == "tanh"
    cont = from_dict(ContinualRecipe, {"sac": {"actor": {"hidden": [32, 32]}}})
    assert cont.sac.actor_lr == 1e-3 and cont.sac.actor.layer_norm  # Continual World's
    assert cont.sac.actor.hidden == [32, 32] and cont.env.max_episode_steps == 200
    nav = from_dict(ContinualRecipe, {"env": {"name": "navigation2d"}})
    assert nav.env.max_episode_steps is None  # the family's own limit


def test_python_built_configs_are_validated_like_toml() -> None:
    from mtrl.kinds.mtppo import PPOConfig
    from mtrl.meta import MetaLearnerConfig
    from mtrl.nets import NetConfig

    with pytest.raises(ConfigError, match="arch = 'foo' is not allowed"):
        NetConfig(arch="foo")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="encoder = 'foo'"):
        NetConfig(encoder="foo")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="algorithm = 'foo'"):
        MetaLearnerConfig(algorithm="foo")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="inner_steps = 0 is out of range"):
        MetaLearnerConfig(inner_steps=0)
    with pytest.raises(ConfigError, match="lr = -1"):
        PPOConfig(lr=-1)


def test_technique_tables_are_enabled_by_presence_and_removed_with_a_tilde(
    tmp_path: Path,
) -> None:
    """``--set 'demos.proposal={}'`` adds a table with its defaults, ``~demos.bc``
    removes one, and a recipe with empty tables survives config.toml's round trip."""
    from recipes import DEMOS_AQIL

    from mtrl.demos.proposal import ProposalConfig
    from mtrl.recipes import load_recipe

    path = tmp_path / "r.toml"
    path.write_text(DEMOS_AQIL)
    _, cfg = load_recipe(path, ["demos.proposal={}", "~demos.critic_warm_start"])
    assert cfg.demos.proposal == ProposalConfig() and cfg.demos.critic_warm_start is None
    assert cfg.demos.tables() == ["bc", "replay", "regulariser", "proposal"]
    out = tmp_path / "out.toml"
    write_toml(out, cfg)
    assert load_recipe(out)[1] == cfg
    with pytest.raises(ConfigError, match=r"no key 'demos\.dagger' to remove"):
        load_recipe(path, ["~demos.dagger"])
    with pytest.raises(ConfigError, match=r"\[demos.proposal\] needs \[demos.bc\]"):
        load_recipe(path, ["demos.proposal={}", "~demos.bc"])
