"""Curricula inside the existing training loops (MT-SAC and MT-PPO), end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recipes import MTPPO, MTSAC, derived

from mtrl.cli import main

# the shared MT-SAC and MT-PPO recipes (tests/recipes.py) with a curriculum
SAC = derived(
    MTSAC,
    "total_steps=1200",
    "eval_every=600",
    "log_every=200",
    "~env.num_tasks",
    "env.task_params=[{mass = 0.5}, {mass = 1.0}, {mass = 1.5}]",
    'env.order="difficulty"',
    "env.num_envs=2",
    'curriculum.unlock="either"',
    "curriculum.budget=400",
    'curriculum.mastery_metric="return"',
    "curriculum.target_return=[-150.0]",
    "curriculum.random_episodes=2",
)

PPO = derived(
    MTPPO,
    "total_steps=2048",
    "eval_every=1024",
    "~reward_norm",
    'env.name="cartpole"',
    "env.num_tasks=3",
    'env.order="difficulty"',
    "~env.envs_per_task",
    "env.num_envs=4",
    "ppo.epochs=10",
    "~ppo.actor",
    "~ppo.critic",
    'curriculum.unlock="budget"',
    "curriculum.budget=512",
)


def test_mtsac_with_a_curriculum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "sac.toml"
    recipe.write_text(SAC)
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--run-dir", str(run)]) == 0
    results = json.loads((run / "summary.json").read_text())["results"]
    cur = results["curriculum"]
    masses = [c["task"] for c in cur]
    assert "mass=0.5" in masses[0] and "mass=1.5" in masses[2]  # easiest first
    assert [c["unlocked_at"] for c in cur] == [0, 400, 800]
    assert [c["steps"] for c in cur] == [400, 400, 400]
    assert cur[2]["target"] and not cur[0]["target"]
    rows = (run / "metrics.csv").read_text().splitlines()
    assert "tasks_unlocked" in rows[0]
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1"]) == 0


def test_mtppo_with_a_curriculum(tmp_path: Path) -> None:
    recipe = tmp_path / "ppo.toml"
    recipe.write_text(PPO)
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--run-dir", str(run)]) == 0
    cur = json.loads((run / "summary.json").read_text())["results"]["curriculum"]
    assert [c["unlocked_at"] for c in cur] == [0, 512, 1024]
    assert [c["steps"] for c in cur] == [512, 512, 1024]


def test_bad_curriculum_fails_before_the_run_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "sac.toml"
    run = tmp_path / "run"
    for bad, needle in [
        (derived(SAC, "curriculum.budget=0"), "budget"),
        (derived(SAC, 'curriculum.sampler="uniformm"'), "sampler"),
        (derived(SAC, "curriculum.prerequisites=[[2], [0], [1]]"), "cycle"),
        (derived(SAC, "~env.order", 'env.tasks=["reach-v3"]'), "task_params"),
        (derived(SAC, 'env.name="MT10"', 'env.tasks=["reach-v2"]', "~env.task_params"), "reach-v3"),
        (derived(SAC, "curriculum.mastery_threshold=1.2"), "mastery_threshold"),
    ]:
        recipe.write_text(bad)
        assert main(["train", str(recipe), "--run-dir", str(run)]) == 2
        assert needle in capsys.readouterr().err
        assert not run.exists(), needle


def test_sb3_ppo_gets_a_curriculum_from_one_callback() -> None:
    import numpy as np
    from stable_baselines3 import PPO

    from mtrl.agents.sb3 import CurriculumCallback, SB3MultiTaskVecEnv, TaskConditionedPolicy
    from mtrl.curriculum import Curriculum, CurriculumConfig
    from mtrl.envs.vector import MultiTaskEnvConfig, make_multitask_env

    env_cfg = MultiTaskEnvConfig(name="navigation2d", num_tasks=3, num_envs=4)
    cfg = CurriculumConfig(unlock="budget", budget=600, sampler="sequential")
    curriculum = Curriculum(cfg, 3, seed=0)
    env = SB3MultiTaskVecEnv(make_multitask_env(env_cfg, scheduler=curriculum))
    model = PPO(TaskConditionedPolicy, env, n_steps=64, batch_size=64, seed=0)
    seen: list[np.ndarray] = []

    class Watch(CurriculumCallback):
        def _on_step(self) -> bool:
            seen.append(np.array([i["task_id"] for i in self.locals["infos"]]))
            return super()._on_step()

    model.learn(1536, callback=Watch(curriculum))
    assert curriculum.unlocked.tolist() == [True, True, True]
    assert curriculum.steps.tolist()[:2] == [600, 600]
    ids = np.stack(seen)
    assert set(ids[:100].ravel().tolist()) == {0}  # 600 steps of task 0 first
    stop = Curriculum(
        CurriculumConfig(
            unlock="all",
            sampler="uniform",
            stop_on_mastery=True,
            mastery_window=1,
            mastery_threshold=0.0,
        ),
        3,
        seed=0,
    )
    env2 = SB3MultiTaskVecEnv(make_multitask_env(env_cfg, scheduler=stop))
    model2 = PPO(TaskConditionedPolicy, env2, n_steps=64, batch_size=64, seed=0)
    model2.learn(100_000, callback=CurriculumCallback(stop))
    assert model2.num_timesteps < 100_000  # every task "mastered" after one episode each


def test_steps_to_mastery_summary_by_hand() -> None:
    """Runs that never master their target count as their full budget (censored)."""
    from mtrl.compare import summarize_lifelong

    def run(mastered_at: list[int], steps: int) -> dict[str, object]:
        cur = [
            {"mastered_at": m, "target": i == len(mastered_at) - 1}
            for i, m in enumerate(mastered_at)
        ]
        return {"curriculum": cur, "steps": steps}

    out = summarize_lifelong(
        [run([10, 300], 300), run([20, -1], 500), run([5, 100], 100)]  # target = last task
    )["mastery"]
    assert out["per_seed"] == [300.0, 500.0, 100.0]
    assert out["per_seed_mastered"] == [True, False, True]
    assert out["median_steps"] == 300.0 and out["mastered"] == 2 and out["runs"] == 3
    assert out["low"] <= 300.0 <= out["high"]


def test_compare_of_curriculum_arms_writes_the_mastery_table_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "c.toml"
    recipe.write_text(SAC.replace("total_steps = 1200", "total_steps = 600"))
    out = tmp_path / "cmp"
    arms = "curriculum.unlock|curriculum.sampler=either|sequential,all|targets"
    assert main(["compare", str(recipe), "--seeds", "2", "--out", str(out), "--vary", arms]) == 0
    text = capsys.readouterr().out
    assert "median steps to mastery" in text and "unlock|sampler=all|targets" in text
    doc = json.loads((out / "compare.json").read_text())
    assert all(len(v["mastery"]["per_seed"]) == 2 for v in doc["variants"])
    assert (out / "compare_mastery.png").is_file()
