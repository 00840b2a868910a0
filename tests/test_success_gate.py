"""A cloning weight per task that follows training success: each task's clock runs
forwards while its success holds and back while it falls, on hand-made episodes and on
a real MT10 env where the experts solve every task and then stop acting on half."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from mtrl.agents.hooks import Step
from mtrl.agents.replay import TaskReplayBuffer
from mtrl.agents.sac import MTSAC, SACConfig, UpdateExtension
from mtrl.config import from_dict
from mtrl.demos.bc import bc_loss
from mtrl.demos.regulariser import DemoBCRegulariser, RegulariserConfig
from mtrl.demos.replay import DemoReplay
from mtrl.demos.self_imitation import episode_successes
from mtrl.demos.success_gate import SuccessGate, holds, window_share
from mtrl.envs.policies import metaworld_expert_policy
from mtrl.envs.vector import MultiTaskEnvConfig, make_multitask_env, resolve_tasks
from mtrl.errors import ConfigError


def test_the_window_share_and_whether_success_holds() -> None:
    assert window_share([1.0, 0.0], 3) is None
    assert window_share([0.0, 1.0, 0.0, 1.0, 1.0], 4) == 0.75
    assert holds(None, 1.0, 0.0)  # no full window yet: the clock runs
    assert holds(0.8, 0.9, 0.1) and not holds(0.75, 0.9, 0.1)


def test_clocks_run_forwards_while_success_holds_and_back_when_it_falls() -> None:
    gate = SuccessGate(2, 2, decay_steps=30, learning_starts=4, window=1, tolerance=0.0)
    both, tids = np.array([True, True]), np.array([0, 1])
    gate.steps = 2  # episodes end at env step 2 (vector step 2 -> 4): began before 4
    gate.record(both, tids, np.array([1.0, 1.0]))
    assert gate.successes == [[], []] and gate.began == [4, 4]
    gate.advance(10)  # no full window: both clocks run, 10 - 4 env steps
    assert gate.clock == [6, 6]
    gate.steps = 10
    gate.record(both, tids, np.array([1.0, 0.0]))  # task 1 never succeeded: best 0
    gate.advance(20)
    assert gate.clock == [16, 16] and gate.best == [1.0, 0.0]
    gate.steps = 20
    gate.record(both, tids, np.array([0.0, 1.0]))  # task 0 falls from its best
    gate.advance(28)
    assert gate.clock == [8, 24] and gate.best == [1.0, 1.0]
    gate.advance(28)  # no env steps since: nothing moves
    assert gate.clock == [8, 24]
    gate.advance(40)  # task 1 stops at the end of the decay, task 0 at its start
    assert gate.clock == [0, 30]
    restored = SuccessGate(2, 2, 30, 4, 1, 0.0)
    restored.load_state_dict(pickle.loads(pickle.dumps(gate.state_dict())))
    assert restored.state_dict() == gate.state_dict()


def _regulariser(
    num_tasks: int, gate: SuccessGate | None, decay: int = 30, learning_starts: int = 4
) -> DemoBCRegulariser:
    """Cloning weight 1 decaying to 0 over ``decay`` env steps, on 8 random
    demonstrations per task."""
    torch.manual_seed(0)
    agent = MTSAC(SACConfig(), 3, 2, num_tasks)
    rng = np.random.default_rng(0)
    n = 8 * num_tasks
    demos = DemoReplay(
        {
            "obs": rng.normal(size=(n, 3)).astype(np.float32),
            "action": rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
            "reward": np.zeros(n, dtype=np.float32),
            "next_obs": rng.normal(size=(n, 3)).astype(np.float32),
            "terminated": np.zeros(n, dtype=np.float32),
            "task_id": np.repeat(np.arange(num_tasks), 8),
        },
        num_tasks,
    )
    generator = torch.Generator().manual_seed(1)
    return DemoBCRegulariser(
        agent,
        UpdateExtension(),
        demos,
        16,
        "mse",
        generator,
        (1.0, decay, learning_starts, 0.0),
        gate=gate,
    )


def test_each_demonstration_is_cloned_at_its_tasks_weight() -> None:
    gate = SuccessGate(2, 2, decay_steps=30, learning_starts=4, window=1, tolerance=0.0)
    gate.clock = [6, 30]  # task 0 at 1 - 6/30 = 0.8, task 1 at the floor 0
    reg = _regulariser(2, gate)
    reg.before_update(4)  # no env steps since learning started: the clocks stay
    assert reg.task_weights == pytest.approx([0.8, 0.0])
    # the batch the regulariser will draw (a generator seeded as its own)
    batch = reg.demos.sample(torch.tensor([0, 1]), 16, torch.Generator().manual_seed(1))
    with torch.no_grad():
        mean, log_std = reg.agent.actor(batch.obs, batch.task_ids)
        rows = bc_loss("mse", batch.actions, mean, log_std)
        own = reg.agent.actor_value(reg.agent.critic(batch.obs, torch.tanh(mean), batch.task_ids))
        # task 1's rows count in the mean at weight 0
        want = own.abs().mean() * (rows * torch.where(batch.task_ids == 0, 0.8, 0.0)).mean()
    got = reg.actor_penalty()
    assert got is not None
    torch.testing.assert_close(got.detach(), want)


def test_with_every_clock_on_time_the_weights_are_the_schedules() -> None:
    gate = SuccessGate(2, 2, decay_steps=30, learning_starts=4, window=20, tolerance=0.0)
    followed, clocked = _regulariser(2, gate), _regulariser(2, None)
    for steps in (4, 10, 22, 28):
        followed.before_update(steps)
        clocked.before_update(steps)
        assert followed.task_weights == [clocked.weight, clocked.weight]
        assert followed.weight == clocked.weight
    penalty_f, penalty_c = followed.actor_penalty(), clocked.actor_penalty()
    assert penalty_f is not None and penalty_c is not None
    torch.testing.assert_close(penalty_f, penalty_c)


HORIZON = 150


def test_on_mt10_a_task_whose_success_falls_gets_its_cloning_weight_back() -> None:
    """Episode 1: Meta-World's experts act on every task; episode 2: on even tasks only
    (zero actions on odd ones). Window 1, tolerance 0: an odd task the expert solved
    in episode 1 and that fails in episode 2 runs its clock back through episode 3."""
    cfg = MultiTaskEnvConfig(name="MT10", max_episode_steps=HORIZON)
    env, tasks = make_multitask_env(cfg), resolve_tasks(cfg)
    expert = metaworld_expert_policy(tasks, np.arange(10))
    config = from_dict(
        RegulariserConfig,
        {"decay_steps": 100_000, "follow": "success", "success_window": 1, "success_tolerance": 0},
    )
    assert config.follow == "success"
    gate = SuccessGate(10, 10, 100_000, 0, config.success_window, config.success_tolerance)
    reg = _regulariser(10, gate, decay=100_000, learning_starts=0)
    buffer = TaskReplayBuffer(10, 1, 39, 4)
    obs, _ = env.reset(seed=3)
    steps, ended = 0, []
    for t in range(3 * HORIZON):
        a = np.clip(expert(obs), -1.0, 1.0)
        if t >= HORIZON:
            a[1::2] = 0.0
        nxt, rew, term, trunc, info = env.step(a)
        done = np.logical_or(term, trunc)
        o = obs["observation"].astype(np.float32)
        step = Step(o, a, rew, o, term.astype(np.float32), done, obs["task_id"])
        reg.observe(step, info)
        if done.any():
            ended.append(episode_successes(info, 10))
        steps += 10
        reg.after_env_step(steps, buffer)
        reg.before_update(steps)
        obs = nxt
    env.close()
    assert len(ended) == 3
    solved_then_failed = [t for t in range(1, 10, 2) if ended[0][t] == 1.0]
    always = [t for t in range(0, 10, 2) if all(e[t] == 1.0 for e in ended)]
    assert len(solved_then_failed) >= 2 and len(always) >= 2, ended
    assert all(e[t] == 0.0 for e in ended[1:] for t in range(1, 10, 2))  # zero actions
    episode = 10 * HORIZON  # env steps: ten sub-envs, one task each
    for t in always:  # its success held: its clock ran every env step
        assert gate.clock[t] == 3 * episode
    for t in solved_then_failed:  # forwards until the failure of episode 2 was seen
        assert gate.clock[t] == (2 * episode - 10) - (episode + 10)
        assert reg.task_weights[t] > reg.task_weights[always[0]]


def test_following_success_needs_a_decay() -> None:
    with pytest.raises(ConfigError, match="decay_steps > 0"):
        RegulariserConfig(follow="success")
