"""Curricula: prerequisite graphs, unlock rules, samplers and their state."""

from __future__ import annotations

import numpy as np
import pytest

from mtrl.config import from_dict
from mtrl.curriculum import Curriculum, CurriculumConfig
from mtrl.curriculum.graph import chain, find_cycle, sinks, topological_order
from mtrl.curriculum.progress import (
    ema,
    learning_progress,
    normalized_score,
    progress_probabilities,
)
from mtrl.errors import ConfigError


def test_graph_order_cycles_and_targets() -> None:
    assert chain(3) == [[], [0], [1]]
    dag = [[], [0], [0], [1, 2]]
    assert topological_order(dag) == [0, 1, 2, 3]
    assert topological_order([[1], [], [0, 1]]) == [1, 0, 2]
    assert sinks(dag) == [3]
    assert sorted(find_cycle([[2], [0], [1]])) == [0, 1, 2]
    assert find_cycle(dag) == []
    with pytest.raises(ValueError, match="cycle"):
        topological_order([[1], [0]])
    with pytest.raises(ValueError, match="outside"):
        topological_order([[], [5]])
    with pytest.raises(ValueError, match="itself"):
        topological_order([[0]])


def test_progress_numbers_by_hand() -> None:
    assert normalized_score(-50.0, -100.0, 0.0) == 0.5
    assert ema(0.0, 1.0, 0.1, started=False) == 1.0
    assert ema(1.0, 0.0, 0.25, started=True) == 0.75
    np.testing.assert_allclose(learning_progress([0.5, 0.2], [0.3, 0.4]), [0.2, 0.2])
    # (1 - 0.2) * [0.3, 0.1, 0] / 0.4 + 0.2 / 3
    np.testing.assert_allclose(
        progress_probabilities(np.array([0.3, 0.1, 0.0]), 0.2),
        [0.6 + 0.2 / 3, 0.2 + 0.2 / 3, 0.2 / 3],
    )
    np.testing.assert_allclose(progress_probabilities(np.zeros(4), 0.1), [0.25] * 4)
    with pytest.raises(ValueError):
        normalized_score(0.0, 1.0, 1.0)


def _run_episodes(cur: Curriculum, task: int, successes: list[float], length: int = 10) -> None:
    for s in successes:
        for _ in range(length):
            cur.record_steps(np.array([task]))
        cur.record_episode(task, 0.0, s)


def test_mastery_unlocks_the_next_task_and_locked_tasks_never_run() -> None:
    cfg = CurriculumConfig(unlock="mastery", mastery_window=3, mastery_threshold=0.6)
    cur = Curriculum(cfg, 3, seed=0)
    assert cur.unlocked.tolist() == [True, False, False]
    assert {cur.next_task(0) for _ in range(50)} == {0}
    _run_episodes(cur, 0, [1.0, 0.0])  # 2 episodes: window not full
    assert not cur.unlocked[1]
    _run_episodes(cur, 0, [1.0])  # mean 2/3 >= 0.6 over the last 3
    assert cur.unlocked.tolist() == [True, True, False]
    assert cur.mastered_at[0] == 30 and cur.unlocked_at[1] == 30
    assert {cur.next_task(0) for _ in range(50)} == {1}  # sequential: the newest
    assert not cur.finished


def test_budget_and_either_rules() -> None:
    cur = Curriculum(CurriculumConfig(unlock="budget", budget=25), 2, seed=0)
    _run_episodes(cur, 0, [1.0, 1.0])  # mastered does not unlock under "budget"
    assert not cur.unlocked[1]
    _run_episodes(cur, 0, [0.0])
    assert cur.unlocked[1] and cur.unlocked_at[1] == 25
    either = CurriculumConfig(unlock="either", budget=1000, mastery_window=1)
    cur = Curriculum(either, 2, seed=0)
    _run_episodes(cur, 0, [1.0])
    assert cur.unlocked[1]


def test_dag_needs_every_prerequisite() -> None:
    cfg = CurriculumConfig(unlock="budget", budget=10, prerequisites=[[], [], [0, 1]])
    cur = Curriculum(cfg, 3, seed=0)
    assert cur.unlocked.tolist() == [True, True, False]
    _run_episodes(cur, 0, [0.0])
    assert not cur.unlocked[2]
    _run_episodes(cur, 1, [0.0])
    assert cur.unlocked[2]


def test_uniform_learning_progress_and_rehearsal_samplers() -> None:
    cur = Curriculum(CurriculumConfig(unlock="all", sampler="uniform"), 4, seed=1)
    counts = np.bincount([cur.next_task(0) for _ in range(4000)], minlength=4)
    assert counts.min() > 850  # about 1000 each
    lp_cfg = CurriculumConfig(unlock="all", sampler="learning_progress", lp_epsilon=0.2)
    cur = Curriculum(lp_cfg, 3, seed=1)
    for k in range(40):  # task 1 improves, tasks 0 and 2 stay flat
        cur.record_episode(0, 0.0, 0.0)
        cur.record_episode(1, 0.0, float(k >= 20))
        cur.record_episode(2, 0.0, 1.0)
    counts = np.bincount([cur.next_task(0) for _ in range(3000)], minlength=3)
    # probabilities 0.2/3 for flat tasks, 0.8 + 0.2/3 for the progressing one
    assert counts[1] / 3000 == pytest.approx(0.8 + 0.2 / 3, abs=0.03)
    direct = Curriculum(CurriculumConfig(unlock="all", sampler="targets"), 3, seed=0)
    assert {direct.next_task(0) for _ in range(50)} == {2}
    rehearse = CurriculumConfig(unlock="budget", budget=10, rehearsal=0.3)
    cur = Curriculum(rehearse, 3, seed=2)
    _run_episodes(cur, 0, [0.0])
    picks = np.array([cur.next_task(0) for _ in range(3000)])
    assert set(picks.tolist()) == {0, 1}  # task 2 stays locked
    assert (picks == 0).mean() == pytest.approx(0.3, abs=0.03)


def test_state_dict_resumes_the_same_choices() -> None:
    cfg = CurriculumConfig(unlock="either", budget=40, mastery_window=2, sampler="uniform")
    a = Curriculum(cfg, 3, seed=3)
    _run_episodes(a, 0, [1.0, 0.0, 1.0])
    b = Curriculum(cfg, 3, seed=99)
    b.load_state_dict(a.state_dict())
    assert [a.next_task(0) for _ in range(20)] == [b.next_task(0) for _ in range(20)]
    np.testing.assert_equal(a.summary(), b.summary())  # NaN scores of untried tasks


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"mastery_threshold": 1.5}, "mastery_threshold"),
        ({"budget": 0}, "budget"),
        ({"sampler": "learning_progres"}, "'sequential', 'uniform', 'learning_progress'"),
        ({"prerequisites": [[1], [0]]}, "cycle"),
        ({"mastery_metric": "return"}, "target_return"),
        ({"unlock": "all"}, "sampler"),
        ({"lp_fast": 0.01, "lp_slow": 0.1}, "lp_fast"),
        ({"sampler": "targets"}, "unlock = 'all'"),
    ],
)
def test_bad_curriculum_tables_name_the_key(data: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        from_dict(CurriculumConfig, data, prefix="curriculum")
    with pytest.raises(ConfigError):  # Python-built configs are checked too
        CurriculumConfig(**data)  # type: ignore[arg-type]


def test_prerequisites_must_match_the_tasks() -> None:
    cfg = CurriculumConfig(prerequisites=[[], [0]])
    with pytest.raises(ConfigError, match="2 entries but the env has 3"):
        Curriculum(cfg, 3, seed=0)


def test_success_metric_needs_a_success_signal() -> None:
    cur = Curriculum(CurriculumConfig(), 2, seed=0)
    with pytest.raises(ConfigError, match="mastery_metric = 'return'"):
        cur.record_episode(0, -10.0, float("nan"))
