"""Meta-RL on Meta-World's ML benchmarks: held-out tasks from the test split, success
after adaptation, environments remade per class, the split check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mtrl.cli import main
from mtrl.envs import get_family
from mtrl.errors import ConfigError
from mtrl.kinds.rl2 import RL2Recipe, TrialPPOConfig, train_rl2
from mtrl.meta.rl_sampler import EpisodeSampler, check_held_out, held_out_tasks, meta_family


def test_ml1_held_out_tasks_are_its_test_goals_and_apart_from_training() -> None:
    family = meta_family("ML1:reach-v3", "RL²")
    held = held_out_tasks(family, 5, np.random.default_rng(0))
    assert {t["split"] for t in held} == {"test"}
    assert {t["split"] for t in family.sample_tasks(5, np.random.default_rng(0))} == {"train"}
    assert family.shared_goals() == 0  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"3 of its held-out test tasks are also training"):
        check_held_out(3, "ML1:reach-v3")


def test_rl2_on_ml1_reports_success_after_adaptation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = RL2Recipe(
        env="ML1:reach-v3", horizon=15, gru=8, meta_batch=2, trials_per_task=1,
        iterations=1, ppo=TrialPPOConfig(minibatches=1, epochs=1),
    )  # fmt: skip
    res = train_rl2(recipe, tmp_path / "run")
    assert res["env_steps"] == 2 * 2 * 15  # tasks x episodes x horizon (reach ends by time)
    assert main(["adapt", str(tmp_path / "run"), "--tasks", "2", "--steps", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["metric"] == "success"
    point = doc["curves"]["RL² (memory across episodes)"][1]
    assert 0.0 <= point["success"] <= 1.0 and "success_ci95" in point
    assert main(["adapt", str(tmp_path / "run"), "--tasks", "2", "--steps", "1"]) == 0
    assert "1 episodes" in capsys.readouterr().out


def test_the_sampler_remakes_an_environment_for_another_class() -> None:
    family = get_family("ML10")
    train, test = family.tasks("train"), family.tasks("test")
    sampler = EpisodeSampler(family, 1, 1, horizon=3, seed=0)
    sampler.set_tasks([train[0]])
    first = sampler.grid.envs[0]  # type: ignore[union-attr]
    sampler.set_tasks([test[0]])
    assert test[0]["env_name"] != train[0]["env_name"]
    env = sampler.grid.envs[0]  # type: ignore[union-attr]
    assert env is not first and env.env_name == test[0]["env_name"]
    ep = sampler.sample(lambda obs: torch.zeros(1, 1, sampler.act_dim))
    assert ep.masks.sum() == 3 and ep.episode_successes() is not None
    sampler.close()


def test_bench_meta_rl_times_both_samplers(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "meta-rl", "--steps", "5", "--repeats", "1", "--meta-batch", "5", "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["steps_per_s"]["mtrl"] > 0 and doc["steps_per_s"]["metaworld"] > 0
    ratio = doc["steps_per_s"]["mtrl"] / doc["steps_per_s"]["metaworld"]
    assert doc["ratio"] == pytest.approx(ratio)
    assert main(["bench", "meta-rl", "--steps", "5", "--meta-batch", "20"]) == 2
    assert "divisor of 50" in capsys.readouterr().err
    # worker processes against Meta-World's async vector env and the one-process sampler
    assert main([*args, "--vectorization", "async", "--workers", "2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["workers"] == 2 and doc["steps_per_s"]["mtrl_one_process"] > 0


def _episodes_after(sampler: EpisodeSampler, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    ep = sampler.sample(lambda obs: torch.randn(*obs.shape[:-1], sampler.act_dim))
    return torch.cat([ep.obs.flatten(), ep.rewards.flatten()])


@pytest.mark.parametrize("env", ["halfcheetah-vel", "ML10"])
def test_a_restored_sampler_continues_as_the_uninterrupted_one(env: str) -> None:
    """Reset noise comes from each env's RNG, and ML10 slots hold envs of the class of
    their task: a checkpoint between iterations must bring both back."""
    family = meta_family(env, "test")
    first = family.sample_tasks(2, np.random.default_rng(0))
    then = family.sample_tasks(2, np.random.default_rng(1))
    a = EpisodeSampler(family, 2, 1, horizon=5, seed=3)
    a.set_tasks(first)
    _episodes_after(a, 0)
    state = a.state_dict()
    a.set_tasks(then)
    uninterrupted = _episodes_after(a, 1)
    b = EpisodeSampler(family, 2, 1, horizon=5, seed=3)
    b.load_state_dict(state)
    b.set_tasks(then)
    assert torch.equal(_episodes_after(b, 1), uninterrupted)
    fresh = EpisodeSampler(family, 2, 1, horizon=5, seed=3)  # what a resume did before
    fresh.set_tasks(then)
    if env == "halfcheetah-vel":
        assert not torch.equal(_episodes_after(fresh, 1), uninterrupted)
    for s in (a, b, fresh):
        s.close()


@pytest.mark.parametrize("kind", ["rl2", "pearl"])
def test_rl2_and_pearl_run_on_a_mujoco_family(kind: str, tmp_path: Path) -> None:
    from mtrl.kinds.pearl import PEARLRecipe, train_pearl

    if kind == "rl2":
        res = train_rl2(
            RL2Recipe(env="halfcheetah-vel", horizon=10, gru=8, meta_batch=2,
                      trials_per_task=1, iterations=2, ppo=TrialPPOConfig(minibatches=1)),
            tmp_path / "run",
        )  # fmt: skip
    else:
        res = train_pearl(
            PEARLRecipe(env="halfcheetah-vel", horizon=10, train_tasks=4, iterations=2,
                        tasks_per_iteration=2, train_steps=2, meta_batch=2, context_batch=5,
                        batch_size=8, hidden=[16], encoder_hidden=[16]),
            tmp_path / "run",
        )  # fmt: skip
    assert res["iterations"] == 2 and np.isfinite(res["final_post_return"])
    assert res["env_steps"] > 0


def test_worker_processes_sample_the_episodes_of_one_process() -> None:
    """ML10's slots remake envs of another class inside the workers, and a checkpoint
    of a sampler with workers restores into one without (and the other way)."""
    family = meta_family("ML10", "test")
    first = family.sample_tasks(3, np.random.default_rng(0))
    then = family.tasks("test")[:3]

    def episodes(sampler: EpisodeSampler, seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        ep = sampler.sample(lambda obs: torch.randn(*obs.shape[:-1], sampler.act_dim))
        assert ep.successes is not None
        return [ep.obs, ep.rewards, ep.masks, ep.successes]

    here = EpisodeSampler(family, 3, 1, horizon=4, seed=5)
    there = EpisodeSampler(family, 3, 1, horizon=4, seed=5, workers=2)
    for s in (here, there):
        s.set_tasks(first)
    assert all(map(torch.equal, episodes(here, 0), episodes(there, 0)))
    moved = EpisodeSampler(family, 3, 1, horizon=4, seed=5)
    moved.load_state_dict(there.state_dict())
    for s in (here, there, moved):
        s.set_tasks(then)
    want = episodes(here, 1)
    assert all(map(torch.equal, want, episodes(there, 1)))
    assert all(map(torch.equal, want, episodes(moved, 1)))
    for s in (here, there, moved):
        s.close()


def test_success_bars_in_the_adaptation_plot_stay_within_0_and_1() -> None:
    """A success rate's CI bars are cut at 0 and 1 (0.02 ± 0.04 is drawn from 0 to
    0.06); a return's stay symmetric."""
    from mtrl.kinds.adaptation import error_bars

    below, above = error_bars("success", [0.02, 0.5, 0.98], [0.04, 0.1, 0.05])
    assert below == pytest.approx([0.02, 0.1, 0.05]) and above == pytest.approx([0.04, 0.1, 0.02])
    assert error_bars("return", [-5.0], [10.0]) == ([10.0], [10.0])


def test_the_adaptation_plot_says_its_bars_are_a_ci_over_tasks_of_one_seed() -> None:
    """A reader of ``plots/adaptation.png`` learns how many tasks each point averages
    and that the bars are not a spread over seeds."""
    from mtrl.kinds.adaptation import plot_caption

    assert plot_caption({"env": "ML1:reach-v3", "tasks": 50}) == (
        "ML1:reach-v3: mean over 50 tasks, bars 95% CI over tasks (one seed)"
    )
    assert (
        plot_caption({"tasks": 1000}) == "mean over 1000 tasks, bars 95% CI over tasks (one seed)"
    )
