"""Behaviour cloning warm starts: the likelihood, balanced batches, the phase in an
mtsac run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from mtrl.agents.mtsac_train import MTSACRecipe, train_mtsac
from mtrl.config import from_dict
from mtrl.demos.bc import balanced_indices, normalize_actions, squashed_log_prob
from mtrl.demos.collect import collect
from mtrl.errors import MtrlError
from mtrl.runs import RunDir

TASKS = ["reach-v3", "drawer-close-v3"]


def test_squashed_log_prob_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g) * 0.3
    actions = torch.rand(5, 3, generator=g) * 1.8 - 0.9
    ref = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    torch.testing.assert_close(
        squashed_log_prob(actions, mean, log_std), ref.log_prob(actions).sum(-1)
    )
    assert torch.isfinite(squashed_log_prob(torch.ones(1, 3), mean[:1], log_std[:1])).all()


def test_actions_are_normalised_and_batches_balanced() -> None:
    low, high = np.array([-2.0, 0.0]), np.array([2.0, 1.0])
    np.testing.assert_allclose(
        normalize_actions(np.array([[0.0, 0.25], [2.0, 1.0]]), low, high), [[0, -0.5], [1, 1]]
    )
    tids = np.array([0] * 90 + [1] * 10)
    idx = balanced_indices(tids, 20, np.random.default_rng(0))
    assert np.bincount(tids[idx]).tolist() == [10, 10]


def _recipe(root: Path, **kw: object) -> MTSACRecipe:
    base: dict[str, object] = {
        "kind": "mtsac",
        "seed": 1,
        "total_steps": 200,
        "learning_starts": 100,
        "batch_size": 32,
        "eval_episodes": 1,
        "checkpoint_every": 100,
        "env": {"name": "MT10", "tasks": TASKS, "max_episode_steps": 50},
        "sac": {"actor": {"hidden": [32, 32]}, "critic": {"hidden": [32, 32]}},
        "demos": {
            "dataset": "mtrl/mt10-expert-v0",
            "root": str(root),
            "bc_steps": 60,
            "batch_size": 64,
            "log_every": 20,
        },
    }
    return from_dict(MTSACRecipe, base | kw)


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    collect("MT10", "expert", 1, root, max_episode_steps=50)
    return root


def test_the_cloning_phase_is_logged_and_checkpointed(demos: Path, tmp_path: Path) -> None:
    """MT10's dataset against a two-task recipe is refused; on MT10 itself the phase
    logs falling bc_loss rows and leaves a step-0 checkpoint (where a resume starts)."""
    with pytest.raises(MtrlError, match="holds tasks"):
        train_mtsac(_recipe(demos), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # refused before the run directory
    recipe = _recipe(demos, env={"name": "MT10", "max_episode_steps": 50}, batch_size=30)
    train_mtsac(recipe, tmp_path / "run")
    rows = RunDir.open(tmp_path / "run").read_metrics()
    bc = [float(r["bc_loss"]) for r in rows if r.get("bc_loss")]
    assert len(bc) == 3 and bc[-1] < bc[0]
    first = RunDir.open(tmp_path / "run").load_checkpoint(
        tmp_path / "run" / "checkpoints" / "step_0.pt"
    )
    assert first["steps"] == 0
