"""A Syllabus curriculum (the real syllabus-rl package) drives mtrl's sub-envs."""

from __future__ import annotations

import numpy as np

from mtrl.curriculum.syllabus import SyllabusScheduler
from mtrl.envs.vector import MultiTaskEnvConfig, make_multitask_env


def test_syllabus_sequential_curriculum_picks_the_tasks() -> None:
    from syllabus.curricula import SequentialCurriculum
    from syllabus.task_space import DiscreteTaskSpace

    # task 0 for 6 episodes, then task 2 for the rest (Syllabus counts the episodes)
    seq = SequentialCurriculum([0, 2], ["episodes>=6"], task_space=DiscreteTaskSpace(3))
    cfg = MultiTaskEnvConfig(name="navigation2d", num_tasks=3, num_envs=2)
    with make_multitask_env(cfg, scheduler=SyllabusScheduler(seq)) as env:
        env.reset(seed=0)
        env.action_space.seed(0)
        for _ in range(800):  # 100-step episodes: 16 episodes over the two sub-envs
            env.step(env.action_space.sample())
        stats = env.episode_statistics()
    episodes = [r["episodes"] for r in stats]
    assert episodes[1] == 0  # never sampled
    assert 6 <= episodes[0] <= 8 and episodes[0] + episodes[2] == 16
    assert seq.total_episodes == 16
    assert np.isclose(seq.total_steps, 1600)
