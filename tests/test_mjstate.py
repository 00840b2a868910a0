"""Compact MuJoCo snapshots: a model comes back equal to the one snapshotted, by way of
its XML file, and anything the file cannot vouch for is refused or stored whole."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import metaworld
import mujoco
import numpy as np
import pytest

from mtrl.envs import mjstate
from mtrl.envs.snapshot import restore, snapshot
from mtrl.errors import ConfigError

PICK_PLACE = str(
    Path(metaworld.__file__).parent / "assets" / "sawyer_xyz" / "sawyer_pick_place_v3.xml"
)


def _flat(struct: dict[str, object]) -> dict[str, object]:
    return {
        k: _flat(v) if isinstance(v, dict) else np.asarray(v).tolist() for k, v in struct.items()
    }


def _assert_same_model(a: mujoco.MjModel, b: mujoco.MjModel) -> None:
    for name, value in mjstate._arrays(a).items():
        assert np.array_equal(value, getattr(b, name), equal_nan=True), name
    for name in ("opt", "vis", "stat"):
        assert _flat(mjstate._struct(getattr(a, name))) == _flat(
            mjstate._struct(getattr(b, name))
        ), name


def test_changed_physics_of_a_gymnasium_env_come_back() -> None:
    """A task that changed masses, friction, gravity and the time step (as the varied-
    physics families do) keeps them through a snapshot; the env steps on identically."""
    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    model = env.unwrapped.model  # type: ignore[attr-defined]
    model.body_mass[:] *= 1.7
    model.geom_friction[:, 0] = 0.3
    model.opt.gravity[:] = [0.0, 0.0, -5.0]
    model.opt.timestep = 0.004
    env.action_space.seed(0)
    for _ in range(7):
        env.step(env.action_space.sample())
    copy = restore(snapshot(env))
    _assert_same_model(model, copy.unwrapped.model)
    assert copy.unwrapped.data.model is copy.unwrapped.model
    action = np.full(3, 0.3, dtype=np.float32)
    for _ in range(5):
        assert np.array_equal(env.step(action)[0], copy.step(action)[0])


def test_meta_world_model_is_stored_by_file_not_meshes() -> None:
    benchmark = metaworld.MT1("pick-place-v3", seed=0)
    env = benchmark.train_classes["pick-place-v3"]()
    env.set_task(benchmark.train_tasks[0])
    env.reset(seed=0)
    env.model.body_pos[3] += 0.01  # small arrays are stored by value
    env.action_space.seed(0)
    env.step(env.action_space.sample())
    blob = snapshot(env)
    whole = len(snapshot((env.model, env.data)))  # a bare model: no file known
    assert whole > 20_000_000 and len(blob) < whole / 20
    copy = restore(blob)
    _assert_same_model(env.model, copy.model)
    assert copy.data.model is copy.model and copy.data.time == env.data.time
    for name, value in mjstate._arrays(env.data).items():
        if not mjstate._in_arena(name):  # contacts, constraints: rebuilt by a step
            assert np.array_equal(value, getattr(copy.data, name)), name


def test_model_that_is_not_its_files_is_pickled_whole() -> None:
    model = mujoco.MjModel.from_xml_path(PICK_PLACE)
    model.tex_data[:100] = 7  # a large array the file does not have
    assert mjstate.model_state(model, PICK_PLACE) is None
    assert mjstate.model_state(model, None) is None


def test_changed_asset_file_is_refused_on_load() -> None:
    model = mujoco.MjModel.from_xml_path(PICK_PLACE)
    state = mjstate.model_state(model, PICK_PLACE)
    assert state is not None
    name = "mesh_vert"
    state["digests"][name] = (state["digests"][name][0], 0)
    with pytest.raises(ConfigError, match="changed since the snapshot"):
        mjstate.set_model(mjstate.load_model(PICK_PLACE), state)
    with pytest.raises(ConfigError, match="cannot be loaded"):
        mjstate.load_model("/nonexistent/arm.xml")
