"""Where SAC starts from a clone: its spread set in every state (``demos.bc.init_std``)
and the clone acting instead of random actions before learning starts
(``demos.bc.collect``); in real MT10 runs, against the defaults."""

from __future__ import annotations

import argparse
import math
import typing
from pathlib import Path

import pytest
import torch
from recipes import tiny_mt10_demos

from mtrl.agents.sac import Actor
from mtrl.collect import collect
from mtrl.config import from_dict
from mtrl.demos.bc import CloningConfig
from mtrl.demos.config import PolicyDemosConfig
from mtrl.errors import ConfigError
from mtrl.kinds.mtsac import MTSACRecipe, train_mtsac
from mtrl.nets import NetConfig
from mtrl.nets.multitask import Architecture
from mtrl.runs import RunDir

HIDDEN = {"softmod": [8, 8, 8], "residual": [8]}


@pytest.mark.parametrize("arch", typing.get_args(Architecture))
def test_the_spread_is_set_everywhere_and_the_mean_is_untouched(arch: str) -> None:
    torch.manual_seed(0)
    actor = Actor(NetConfig(arch=arch, hidden=HIDDEN.get(arch, [8, 8])), 5, 3, 4)  # type: ignore[arg-type]
    obs, tasks = torch.randn(40, 5) * 3.0, torch.arange(40) % 4
    mean, _ = actor(obs, tasks)
    actor.set_spread(0.1)
    after, log_std = actor(obs, tasks)
    assert torch.equal(after, mean)
    torch.testing.assert_close(log_std, torch.full_like(log_std, math.log(0.1)))
    # SAC moves the spread from there: one step on the entropy changes it
    opt = torch.optim.SGD(actor.parameters(), lr=0.1)
    (-actor(obs, tasks)[1].sum()).backward()
    opt.step()
    assert not torch.allclose(actor(obs, tasks)[1], log_std)


def test_on_policy_runs_refuse_the_clones_start_options() -> None:
    for bc in (CloningConfig(init_std=0.1), CloningConfig(collect="clone")):
        with pytest.raises(ConfigError, match="MT-PPO"):
            PolicyDemosConfig(dataset="mtrl/mt10-expert-v0", bc=bc)
    with pytest.raises(ConfigError, match="init_std"):
        CloningConfig(init_std=-0.1)


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    collect("MT10", "expert", 1, root, max_episode_steps=50)
    return root


def _run(demos: Path, out: Path, **bc: object) -> dict[str, typing.Any]:
    """A run whose learning never starts (200 env steps, learning_starts 1000): its
    checkpoint holds the clone and the replay of what acted before learning."""
    tables = {"bc": {"steps": 40, "batch_size": 64, **bc}, "replay": {"share": 0.5}}
    top = {"seed": 3, "total_steps": 200, "learning_starts": 1000, "checkpoint_every": 100}
    train_mtsac(from_dict(MTSACRecipe, tiny_mt10_demos(demos, tables, **top)), out)
    return RunDir.open(out).load_checkpoint()


def _noise(state: dict[str, typing.Any]) -> torch.Tensor:
    """Per stored row: how far the stored action's pre-tanh value is from the actor's
    mean there, in units of the actor's std."""
    actor = Actor(NetConfig(hidden=[32, 32]), 39, 4, 10)
    actor.load_state_dict(
        {k.removeprefix("actor."): v for k, v in state["agent"].items() if k.startswith("actor.")}
    )
    buf = state["buffer"]
    obs, actions = buf["obs"].reshape(-1, 39), buf["actions"].reshape(-1, 4)
    tasks = torch.arange(10).repeat_interleave(buf["obs"].shape[1])
    with torch.no_grad():
        mean, log_std = actor(obs, tasks)
    pre = torch.atanh(actions.clamp(-1 + 1e-6, 1 - 1e-6))
    return (pre - mean).abs() / log_std.exp()


def test_the_clone_acts_at_its_spread_before_learning(demos: Path, tmp_path: Path) -> None:
    state = _run(demos, tmp_path / "clone", init_std=0.05, collect="clone")
    log_std = state["agent"]["actor.net.body.4.bias"][4:]
    torch.testing.assert_close(log_std, torch.full_like(log_std, math.log(0.05)))
    noise = _noise(state)
    assert noise.numel() == 200 * 4
    assert float(noise.max()) < 6.0  # Gaussian noise of the actor's own spread
    assert 0.6 < float(noise.square().mean()) < 1.5
    # the default: uniform random actions, far from the clone in its own units
    default = _noise(_run(demos, tmp_path / "random", init_std=0.05))
    assert float(default.square().mean()) > 100.0


def test_clone_noise_acts_on_the_mean_at_the_own_spread_and_at_a_fixed_one(
    demos: Path, tmp_path: Path
) -> None:
    """experiments/clone_noise.py's policies: std 0 is the run's deterministic action,
    ``None`` samples at the actor's own spread, a number at that spread."""
    import importlib.util

    import numpy as np

    import mtrl

    spec = importlib.util.spec_from_file_location("clone_noise", "experiments/clone_noise.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script._stds("0.05,0.1") == [0.05, 0.1] and script._stds("") == []
    for bad in ("abc", "0,0.1"):
        with pytest.raises(argparse.ArgumentTypeError, match="--stds"):
            script._stds(bad)
    _run(demos, tmp_path / "run", init_std=0.05)
    run = mtrl.load(tmp_path / "run")
    rng = np.random.default_rng(0)
    obs = {"observation": rng.normal(size=(500, 39)), "task_id": np.arange(500) % 10}
    seen: list[float] = []
    mean = script.noisy_policy(run, 0.0, 0, seen)(obs)
    np.testing.assert_allclose(mean, run.act(obs["observation"], obs["task_id"]), atol=1e-6)
    pre = np.arctanh(np.clip(mean, -1 + 1e-6, 1 - 1e-6))
    for std, spread in ((None, 0.05), (0.3, 0.3)):
        noisy = script.noisy_policy(run, std, 1, seen)(obs)
        assert seen[-1] == pytest.approx(spread)
        z = (np.arctanh(np.clip(noisy, -1 + 1e-6, 1 - 1e-6)) - pre) / spread
        assert abs(float(z.std()) - 1.0) < 0.05
