"""Behaviour cloning warm starts: the likelihood, balanced batches, the phase in an
mtsac run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from mtrl.agents.replay import Batch
from mtrl.agents.sac import MTSAC, SACConfig
from mtrl.collect import collect
from mtrl.config import from_dict
from mtrl.demos.bc import (
    CloningConfig,
    balanced_indices,
    bc_loss,
    bc_lr,
    clone,
    normalize_actions,
    squashed_log_prob,
)
from mtrl.demos.config import DemosConfig
from mtrl.demos.replay import DemoReplay, demo_share
from mtrl.errors import ConfigError, MtrlError
from mtrl.kinds.mtsac import MTSACRecipe, train_mtsac
from mtrl.runs import RunDir
from mtrl.seeding import seed_everything

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
        "buffer_capacity": 2000,  # small checkpoints (the default holds 1M transitions)
        "env": {"name": "MT10", "tasks": TASKS, "max_episode_steps": 50},
        "sac": {"actor": {"hidden": [32, 32]}, "critic": {"hidden": [32, 32]}},
        "demos": {
            "dataset": "mtrl/mt10-expert-v0",
            "root": str(root),
            "bc": {"steps": 60, "batch_size": 64, "log_every": 20},
        },
    }
    return from_dict(MTSACRecipe, base | kw)


def _warm_start_and_replay(root: Path, warm_steps: int) -> dict[str, object]:
    """A [demos] table: the critic warm start, then half of every batch demonstrations."""
    return {
        "dataset": "mtrl/mt10-expert-v0",
        "root": str(root),
        "critic_warm_start": {"steps": warm_steps, "log_every": 20},
        "replay": {"share": 0.5},
    }


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


def test_mse_cloning_loss_by_hand() -> None:
    mean = torch.tensor([[0.0, 100.0]])  # tanh: 0 and ~1
    actions = torch.tensor([[0.5, 1.0]])
    torch.testing.assert_close(
        bc_loss("mse", actions, mean, torch.zeros(1, 2)), torch.tensor([0.25])
    )
    with pytest.raises(ValueError, match="'nll' or 'mse'"):
        bc_loss("l1", actions, mean, mean)  # type: ignore[arg-type]


def test_cosine_cloning_rate_by_hand_and_in_the_optimiser() -> None:
    assert bc_lr("constant", 0.1, 7, 10) == 0.1
    assert [bc_lr("cosine", 0.1, s, 4) for s in (1, 3)] == [0.1, pytest.approx(0.05)]
    assert bc_lr("cosine", 0.1, 4, 4) == pytest.approx(0.1 * (1 - 2**-0.5) / 2)
    with pytest.raises(ValueError, match="'constant' or 'cosine'"):
        bc_lr("step", 0.1, 1, 4)
    # Adam moves a parameter with a steady gradient sign by ~lr per step, so the
    # distance travelled is the sum of the schedule's rates (half a constant run's)
    for schedule, total in (("constant", 0.2 * 50), ("cosine", 0.2 * 25 + 0.1)):
        p = torch.nn.Parameter(torch.tensor([100.0]))
        cfg = CloningConfig(steps=50, lr=0.2, lr_schedule=schedule)  # type: ignore[arg-type]
        rows: list[dict[str, float]] = []
        clone([p], lambda idx, p=p: (p**2).sum(), np.zeros(8, int), cfg, 0, log_metrics=rows.append)
        assert 100.0 - p.item() == pytest.approx(total, rel=0.02)
        assert rows[-1]["bc_lr"] == pytest.approx(bc_lr(schedule, 0.2, 50, 50))
    with pytest.raises(ConfigError, match=r"demos\.bc\.lr_schedule = 'linear'"):
        data = {"dataset": "mtrl/x-v0", "bc": {"lr_schedule": "linear"}}
        from_dict(DemosConfig, data, prefix="demos")


def test_demo_share_decays_linearly_to_zero() -> None:
    assert demo_share(0.5, 0, 10**6) == 0.5  # fixed
    assert demo_share(0.5, 1000, 0) == 0.5
    assert demo_share(0.5, 1000, 250) == pytest.approx(0.375)
    assert demo_share(0.5, 1000, 5000) == 0.0
    assert demo_share(0.5, 1000, -300) == 0.5  # before learning starts: not above share


def test_a_decay_to_a_floor_stops_there() -> None:
    """``final_weight``: the weight falls linearly from ``weight`` to the floor over
    ``decay_steps`` and is held there; the schedule the regulariser follows."""
    from mtrl.demos.regulariser import DemoBCRegulariser

    assert demo_share(1.0, 1000, 0, 0.1) == 1.0
    assert demo_share(1.0, 1000, 500, 0.1) == pytest.approx(0.55)
    assert demo_share(1.0, 1000, 1000, 0.1) == pytest.approx(0.1)
    assert demo_share(1.0, 1000, 10**6, 0.1) == pytest.approx(0.1)
    agent = MTSAC(SACConfig(), 3, 2, 2)
    demos = DemoReplay(_demo_arrays([0, 1], 0.5), 2)
    gen = torch.Generator().manual_seed(0)
    reg = DemoBCRegulariser(agent, agent.extension, demos, 2, "mse", gen, (1.0, 1000, 200, 0.2))
    weights = []
    for steps in (200, 700, 1200, 50_000):  # updates begin at learning_starts
        reg.before_update(steps)
        weights.append(reg.weight)
    assert weights == pytest.approx([1.0, 0.6, 0.2, 0.2])


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"final_weight": 0.1}, "needs decay_steps"),
        ({"final_weight": 2.0, "decay_steps": 10}, "above weight"),
    ],
)
def test_a_floor_without_a_decay_or_above_the_weight_is_refused(table: dict, named: str) -> None:
    from mtrl.demos.regulariser import RegulariserConfig

    with pytest.raises(ConfigError, match=named):
        RegulariserConfig(**table)


def _demo_arrays(tasks: list[int], value: float) -> dict[str, np.ndarray]:
    n = len(tasks)
    return {
        "obs": np.full((n, 3), value, dtype=np.float32),
        "next_obs": np.full((n, 3), value, dtype=np.float32),
        "action": np.full((n, 2), value, dtype=np.float32),
        "reward": np.arange(n, dtype=np.float32) + 100 * np.asarray(tasks),
        "terminated": np.zeros(n, dtype=np.float32),
        "task_id": np.asarray(tasks),
    }


def test_demo_rows_replace_the_first_rows_of_each_task_with_demos() -> None:
    demos = DemoReplay(_demo_arrays([0, 0, 0, 2, 2], 7.0), num_tasks=3)
    tids = torch.tensor([0] * 4 + [1] * 4 + [2] * 4)
    batch = Batch(
        torch.zeros(12, 3),
        torch.zeros(12, 2),
        torch.full((12,), -1.0),
        torch.zeros(12, 3),
        torch.zeros(12),
        tids,
    )
    mixed = demos.mix(batch, 0.5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(mixed.task_ids, tids)  # order and balance kept
    from_demos = mixed.obs[:, 0] == 7.0
    # two of four rows of tasks 0 and 2 (which have demos), none of task 1
    assert from_demos.tolist() == [True, True, False, False] * 1 + [False] * 4 + [
        True,
        True,
        False,
        False,
    ]
    rewards = mixed.rewards[from_demos]
    assert set(rewards[:2].tolist()) <= {0.0, 1.0, 2.0} and set(rewards[2:].tolist()) <= {
        203.0,
        204.0,
    }
    assert demos.mix(batch, 0.2, None) is batch  # below one row per task: unchanged


def test_critic_warm_start_moves_the_critics_only(demos: Path, tmp_path: Path) -> None:
    recipe = _recipe(
        demos,
        env={"name": "MT10", "max_episode_steps": 50},
        batch_size=30,
        total_steps=100,
        demos=_warm_start_and_replay(demos, 40),
    )
    train_mtsac(recipe, tmp_path / "run")
    run = RunDir.open(tmp_path / "run")
    q = [float(r["q_loss"]) for r in run.read_metrics() if r.get("q_loss")]
    assert len(q) == 2
    first = run.load_checkpoint(tmp_path / "run" / "checkpoints" / "step_0.pt")["agent"]
    seed_everything(recipe.seed)  # the run's initialisation, re-made
    fresh = MTSAC(recipe.sac, 39, 4, 10)
    for name, value in fresh.state_dict().items():
        moved = not torch.equal(value, first[name])
        assert moved == name.startswith(("critic.", "critic_target.")), name


def test_cloning_kept_in_rl_updates_is_the_weighted_loss_and_holds_the_clone() -> None:
    """The regulariser adds weight x mean|Q(s, pi(s))| x the cloning loss on demos;
    RL updates with it keep the actor at the demonstrated action, without it not."""
    from mtrl.agents.sac import SACConfig
    from mtrl.demos.regulariser import DemoBCRegulariser

    arrays = _demo_arrays([0, 0, 1, 1], 0.5)

    def agent_and_reg(weight: float) -> tuple[MTSAC, DemoBCRegulariser]:
        torch.manual_seed(0)
        agent = MTSAC(SACConfig(), 3, 2, 2)
        gen = torch.Generator().manual_seed(3)
        reg = DemoBCRegulariser(agent, agent.extension, DemoReplay(arrays, 2), 4, "mse", gen)
        reg.weight = weight
        agent.extension = reg
        return agent, reg

    agent, reg = agent_and_reg(2.0)
    penalty = reg.actor_penalty()
    assert penalty is not None
    obs, tids = torch.full((8, 3), 0.5), torch.tensor([0] * 4 + [1] * 4)
    mean, _ = agent.actor(obs, tids)
    q = torch.minimum(*agent.critic(obs, torch.tanh(mean), tids)).abs().mean()
    by_hand = 2.0 * q * ((torch.tanh(mean) - 0.5) ** 2).sum(-1).mean()
    torch.testing.assert_close(penalty, by_hand)
    reg.weight = 0.0
    assert reg.actor_penalty() is None and reg.last_loss == 0.0

    def distance_after_rl(weight: float) -> float:
        return _distance_after_rl(agent_and_reg(weight)[0], updates=60, terminal=False)

    assert distance_after_rl(5.0) < 0.25 < distance_after_rl(0.0)


def test_the_regulariser_scales_by_the_value_the_actor_maximises() -> None:
    """With an ensemble whose actor follows the critics' mean (RLPD), the |Q| factor is
    the mean over the critics, not their minimum: the cloning weight stays unitless
    against the actor's own -Q term whatever ``actor_q`` is."""
    from mtrl.agents.sac import SACConfig
    from mtrl.demos.regulariser import DemoBCRegulariser

    torch.manual_seed(0)
    agent = MTSAC(SACConfig(critics=4, target_critics=2, actor_q="mean"), 3, 2, 2)
    gen = torch.Generator().manual_seed(3)
    arrays = _demo_arrays([0, 0, 1, 1], 0.5)
    reg = DemoBCRegulariser(agent, agent.extension, DemoReplay(arrays, 2), 4, "mse", gen)
    reg.weight = 1.0
    penalty = reg.actor_penalty()
    assert penalty is not None
    obs, tids = torch.full((8, 3), 0.5), torch.tensor([0] * 4 + [1] * 4)
    mean, _ = agent.actor(obs, tids)
    values = torch.stack(agent.critic(obs, torch.tanh(mean), tids))
    rows = ((torch.tanh(mean) - 0.5) ** 2).sum(-1).mean()
    torch.testing.assert_close(penalty, values.mean(0).abs().mean() * rows)
    assert not torch.isclose(penalty, values.min(0).values.abs().mean() * rows)


def _distance_after_rl(agent: MTSAC, updates: int, terminal: bool) -> float:
    """How far RL on random transitions with a reward for -1 actions moves the actor's
    action at the demonstrations' state from the demonstrated 0.5."""
    g = torch.Generator().manual_seed(1)
    for _ in range(updates):
        o = torch.rand(16, 3, generator=g)
        a = torch.rand(16, 2, generator=g) * 2 - 1
        dones = torch.full((16,), float(terminal))
        tids = torch.tensor([0] * 8 + [1] * 8)
        agent.update(Batch(o, a, -a.sum(-1), torch.rand(16, 3, generator=g), dones, tids))
    act = agent.act(torch.full((2, 3), 0.5), torch.tensor([0, 1]), deterministic=True)
    return float((act.detach() - 0.5).abs().max())


def test_q_filter_clones_only_demonstrations_the_critics_value_above_the_actor() -> None:
    """With ``q_filter`` the cloning loss counts a demonstration only where the critics
    value its action at least as high as the actor's (a hand-masked loss), and RL with
    a reward for the opposite action leaves the clone that the plain regulariser holds."""
    from mtrl.agents.sac import SACConfig
    from mtrl.demos.regulariser import DemoBCRegulariser, q_filter_mask

    torch.testing.assert_close(
        q_filter_mask(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 1.0])),
        torch.tensor([0.0, 1.0, 1.0]),
    )
    arrays = _demo_arrays([0, 0, 1, 1], 0.5)

    def agent_and_reg(q_filter: bool) -> tuple[MTSAC, DemoBCRegulariser]:
        torch.manual_seed(0)
        agent = MTSAC(SACConfig(), 3, 2, 2)
        gen = torch.Generator().manual_seed(3)
        demos = DemoReplay(arrays, 2)
        reg = DemoBCRegulariser(agent, agent.extension, demos, 4, "mse", gen, q_filter=q_filter)
        reg.weight = 5.0
        agent.extension = reg
        return agent, reg

    agent, reg = agent_and_reg(True)
    penalty = reg.actor_penalty()
    assert penalty is not None
    obs, tids = torch.full((8, 3), 0.5), torch.tensor([0] * 4 + [1] * 4)
    demo_actions = torch.full((8, 2), 0.5)
    mean, _ = agent.actor(obs, tids)
    own = torch.minimum(*agent.critic(obs, torch.tanh(mean), tids))
    demo = torch.minimum(*agent.critic(obs, demo_actions, tids))
    keep = (demo >= own).float()
    rows = ((torch.tanh(mean) - 0.5) ** 2).sum(-1)
    torch.testing.assert_close(penalty, 5.0 * own.abs().mean() * (rows * keep).mean())
    assert reg.update_metrics()["q_filter_kept"] == float(keep.mean())

    def distance_after_rl(q_filter: bool) -> float:
        return _distance_after_rl(agent_and_reg(q_filter)[0], updates=300, terminal=True)

    assert distance_after_rl(False) < 0.25 < distance_after_rl(True)


def test_cloning_regulariser_and_a_continual_penalty_add_up() -> None:
    """A continual recipe takes [demos.regulariser]: the regulariser wraps the method,
    and the actor's extra loss is the method's penalty plus the weighted cloning loss."""
    from mtrl.agents.replay import TaskReplayBuffer
    from mtrl.agents.sac import SACConfig
    from mtrl.curriculum.methods import ContinualConfig, ContinualMethod
    from mtrl.demos.regulariser import RegulariserConfig
    from mtrl.demos.setup import DemoSetup
    from mtrl.kinds.continual import ContinualRecipe

    demos = {"dataset": "mtrl/mt10-expert-v0", "regulariser": {"weight": 1.0}}
    recipe = from_dict(
        ContinualRecipe,
        {"kind": "continual", "env": {"name": "MT10", "tasks": TASKS}, "demos": demos},
    )
    assert recipe.demos is not None and recipe.demos.regulariser == RegulariserConfig()
    torch.manual_seed(0)
    agent = MTSAC(SACConfig(), 3, 2, 2)
    method = ContinualMethod(ContinualConfig(method="l2", reg_coef=10.0), agent, 0)
    buffer = TaskReplayBuffer(2, 8, 3, 2)
    buffer.add(
        *(np.zeros((4, k)) for k in (3, 2)),
        np.zeros(4),
        np.zeros((4, 3)),
        np.zeros(4),
        np.zeros(4, int),
    )
    method.end_task(0, buffer)
    with torch.no_grad():
        for p in agent.actor.parameters():
            p.add_(0.1)  # away from the anchors: the L2 penalty is positive
    agent.extension = method
    setup = DemoSetup(
        agent, DemoReplay(_demo_arrays([0, 1], 0.5), 2), torch.Generator(), 4, 0, 2, False
    )
    (reg,) = recipe.demos.build(setup)
    assert agent.extension is reg and reg.inner is method
    reg.before_update(0)  # weight 1.0
    l2 = method.actor_penalty()
    total = reg.actor_penalty()
    assert l2 is not None and total is not None and float(l2) > 0
    assert float(total) > float(l2) and reg.last_loss > 0


def test_sqil_rewards_are_one_for_demonstrations_and_zero_for_the_agent(
    demos: Path, tmp_path: Path
) -> None:
    sqil: dict[str, object] = {
        "dataset": "mtrl/mt10-expert-v0",
        "root": str(demos),
        "critic_warm_start": {"steps": 20, "log_every": 20},
        "replay": {"share": 0.5},
        "sqil": {},
    }
    with pytest.raises(ConfigError, match=r"\[demos.sqil\] needs \[demos.replay\]"):
        _recipe(demos, demos={k: v for k, v in sqil.items() if k != "replay"})
    with pytest.raises(ConfigError, match="reward_norm"):
        _recipe(demos, demos=sqil, reward_norm="return_std")
    recipe = _recipe(
        demos,
        env={"name": "MT10", "max_episode_steps": 50},
        batch_size=30,
        total_steps=150,
        checkpoint_buffer=True,
        demos=sqil,
    )
    train_mtsac(recipe, tmp_path / "run")
    run = RunDir.open(tmp_path / "run")
    state = run.load_checkpoint()
    size = state["buffer"]["size"]
    assert size.sum() == 150
    stored = np.concatenate([state["buffer"]["rewards"][t, :n] for t, n in enumerate(size)])
    assert np.all(stored == 0.0)  # the agent's own transitions: reward 0
    q = [float(r["q_loss"]) for r in run.read_metrics() if r.get("q_loss")]
    assert len(q) == 1 and np.isfinite(q[0])  # the warm start ran on reward-1 demonstrations


def test_success_reward_relabels_the_demonstrations_and_the_agents_steps(
    demos: Path, tmp_path: Path
) -> None:
    """With ``env.reward_version = "success"`` the demonstrations' dense rewards are
    replaced by their success flags, as the env now rewards the agent's own steps: one
    0/1 reward everywhere the critic learns from."""
    from mtrl.demos.dataset import open_dataset, success_rewards, transitions

    collect("MT1:reach-v3", "expert", 1, tmp_path / "reach", max_episode_steps=100)
    data = transitions(open_dataset("mtrl/mt1-reach-v3-expert-v0", tmp_path / "reach"))
    relabelled = success_rewards(data, "mtrl/mt1-reach-v3-expert-v0")
    first = int(np.argmax(relabelled))  # the expert reaches the goal part-way
    assert first > 0 and relabelled[first:].all() and not relabelled[:first].any()
    assert np.array_equal(relabelled, (data["success"] > 0).astype(np.float32))
    assert data["reward"][first - 1] > 9.0  # the dense reward just before: no step to see
    with pytest.raises(MtrlError, match="stores no success flags"):
        success_rewards({**data, "success": np.full(3, np.nan)}, "x/y-v0")
    # what a run's demonstration techniques read is the relabelled data
    from mtrl.envs.vector import make_multitask_env
    from mtrl.kinds.mtsac import _demo_data

    reach = _recipe(
        demos,
        env={"name": "MT1:reach-v3", "max_episode_steps": 100, "reward_version": "success"},
        demos={
            "dataset": "mtrl/mt1-reach-v3-expert-v0",
            "root": str(tmp_path / "reach"),
            "replay": {"share": 0.5},
        },
    )
    with make_multitask_env(reach.env) as env:
        read, _ = _demo_data(reach, env)
    assert read is not None and np.array_equal(read["reward"], relabelled)
    recipe = _recipe(
        demos,
        env={"name": "MT10", "max_episode_steps": 50, "reward_version": "success"},
        batch_size=30,
        total_steps=150,
        checkpoint_buffer=True,
        demos=_warm_start_and_replay(demos, 20),
    )
    train_mtsac(recipe, tmp_path / "run")
    state = RunDir.open(tmp_path / "run").load_checkpoint()
    size = state["buffer"]["size"]
    stored = np.concatenate([state["buffer"]["rewards"][t, :n] for t, n in enumerate(size)])
    assert set(np.unique(stored)) <= {0.0, 1.0}  # the agent's own steps: the success flag
