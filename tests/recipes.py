"""Small recipes of every kind and component, shared by the tests: the resume tests
interrupt them, the golden runs pin their numbers. Each sets ``threads = 1``, so that
torch's float sums do not depend on how many threads a machine or pytest-xdist gives.
``@DATASETS@`` stands for the datasets root of :func:`collect_datasets` (MT10's
scripted experts, one episode a task).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from mtrl.config import apply_overrides

MTSAC = """
kind = "mtsac"
seed = 3
threads = 1
total_steps = 1600
learning_starts = 200
batch_size = 32
buffer_capacity = 2000
eval_every = 400
eval_episodes = 1
log_every = 100
checkpoint_every = 500
[env]
name = "pendulum"
num_tasks = 2
[sac.actor]
hidden = [16, 16]
[sac.critic]
hidden = [16, 16]
"""

# a learning-progress curriculum over three pendulums, unlocked by budget
CURRICULUM = (
    MTSAC.replace("num_tasks = 2", 'num_tasks = 3\nnum_envs = 2\norder = "difficulty"')
    + """
[curriculum]
unlock = "budget"
budget = 300
sampler = "learning_progress"
mastery_metric = "return"
target_return = [-200.0]
random_return = [-1200.0]
"""
)

# a chain unlocked by mastery of the return (thresholds a short run reaches)
MASTERY = (
    MTSAC.replace("num_tasks = 2", 'num_tasks = 3\nnum_envs = 2\norder = "difficulty"')
    + """
[curriculum]
unlock = "mastery"
mastery_metric = "return"
mastery_threshold = 0.3
mastery_window = 2
target_return = [-200.0]
random_return = [-1200.0]
"""
)

# a mixture of two families with per-task reward normalisation (its statistics resume)
MIXTURE = MTSAC.replace(
    'name = "pendulum"\nnum_tasks = 2', 'name = ["pendulum", "navigation2d"]\nnum_tasks = [1, 1]'
).replace("checkpoint_every = 500", 'checkpoint_every = 500\nreward_norm = "return_std"')

# the sub-envs stepped in two worker processes
ASYNC = MTSAC.replace("num_tasks = 2", 'num_tasks = 2\nvectorization = "async"\nworkers = 2')

# two Navigation2D goals in sequence; [continual] method by name (EWC here)
CONTINUAL = """
kind = "continual"
threads = 1
steps_per_task = 400
learning_starts = 100
batch_size = 32
buffer_capacity = 1000
eval_every = 200
eval_episodes = 1
log_every = 200
[env]
name = "navigation2d"
task_params = [{goal = [0.3, 0.0]}, {goal = [-0.3, 0.0]}]
[continual]
method = "ewc"
explore_steps = 100
importance_samples = 8
[sac.actor]
arch = "multihead"
hidden = [16, 16]
encoder = "none"
[sac.critic]
arch = "multihead"
hidden = [16, 16]
encoder = "none"
"""

MTPPO = """
kind = "mtppo"
seed = 2
threads = 1
total_steps = 12288
eval_every = 4096
eval_episodes = 1
checkpoint_every = 3000
reward_norm = "return_std"
[env]
name = "cartpole+cartpole-goal"
num_tasks = 1
envs_per_task = 2
[ppo]
n_steps = 64
epochs = 2
[ppo.actor]
hidden = [16]
[ppo.critic]
hidden = [16]
"""

SINE = """
kind = "sine"
seed = 4
threads = 1
shots = 5
meta_batch = 8
iterations = 1500
hidden = [16, 16]
log_every = 25
checkpoint_every = 400
[eval]
tasks = 20
max_steps = 2
"""

MAML_RL = """
kind = "maml-rl"
seed = 1
threads = 1
env = "navigation2d"
iterations = 4
meta_batch = 3
episodes_per_task = 3
horizon = 20
hidden = [16]
log_every = 1
checkpoint_every = 2
"""

RL2 = """
kind = "rl2"
seed = 1
threads = 1
env = "navigation2d"
iterations = 16
meta_batch = 3
trials_per_task = 2
episodes_per_trial = 2
horizon = 20
gru = 16
log_every = 1
checkpoint_every = 4
[ppo]
minibatches = 2
epochs = 2
"""

PEARL = """
kind = "pearl"
seed = 2
threads = 1
env = "navigation2d"
iterations = 12
horizon = 20
train_tasks = 6
tasks_per_iteration = 3
train_steps = 10
meta_batch = 4
context_batch = 16
batch_size = 32
hidden = [32, 32]
encoder_hidden = [32]
log_every = 1
checkpoint_every = 4
"""

SB3 = """
kind = "sb3"
seed = 0
threads = 1
total_steps = 6144
net_arch = [16]
log_every = 128
checkpoint_every = 1000
eval_episodes = 1
[env]
name = "navigation2d"
num_tasks = 2
envs_per_task = 2
[algo_kwargs]
n_steps = 32
batch_size = 64
"""

# MT-SAC on MT10 (50-step episodes) for the demonstration techniques
_MT10 = MTSAC.replace(
    'name = "pendulum"\nnum_tasks = 2', 'name = "MT10"\nmax_episode_steps = 50'
).replace("batch_size = 32", "batch_size = 30")

_DEMOS = """
[demos]
dataset = "mtrl/mt10-expert-v0"
root = "@DATASETS@"
"""

# every technique at once: cloning, a DAgger round (the clone's rollouts labelled by
# the experts), the critic warm start, demo replay, cloning kept in RL, conservatism on
# demonstration states, the frozen clone proposing actions (IBRL) and self-imitation
DEMOS = (
    _MT10
    + _DEMOS
    + """[demos.bc]
steps = 20
batch_size = 30
log_every = 10
[demos.dagger]
rounds = 1
episodes = 1
[demos.critic_warm_start]
steps = 10
log_every = 10
[demos.replay]
share = 0.5
decay_steps = 1000
[demos.regulariser]
weight = 1.0
decay_steps = 1000
[demos.conservative]
weight = 1.0
samples = 3
[demos.proposal]
[demos.self_imitation]
"""
)

# AQIL-style: cloning (cosine rate), critic warm start, the clone evaluated, replay
DEMOS_AQIL = (
    _MT10
    + _DEMOS
    + """[demos.bc]
steps = 20
batch_size = 30
log_every = 10
lr_schedule = "cosine"
[demos.critic_warm_start]
steps = 10
log_every = 10
[demos.replay]
share = 0.5
[demos.regulariser]
weight = 0.5
"""
)

# the learner options together: a categorical critic ensemble (residual bodies, min
# over a random two), two updates per env step, resets, cloning of the frozen clone's
# actions kept by a Q-filter at a weight per task that follows its training success
LEARNER = (
    DEMOS_AQIL.replace(
        "weight = 0.5",
        'weight = 0.5\nq_filter = true\ndecay_steps = 1000\nfollow = "success"\n'
        'success_window = 1\nanchor = "clone"',
    )
    .replace("batch_size = 32", "batch_size = 30")
    .replace("learning_starts = 200", "learning_starts = 200\nupdates_per_step = 2.0")
    .replace(
        "[sac.critic]\nhidden = [16, 16]",
        '[sac.critic]\narch = "residual"\nhidden = [16]\nresidual_blocks = 1',
    )
    + """[sac]
critics = 4
target_critics = 2
actor_q = "mean"
[sac.hl_gauss]
bins = 21
v_min = 0.0
v_max = 200.0
[resets]
every = 500
networks = "critic"
"""
)

# SQIL: demonstrations rewarded 1, the agent's own transitions 0
DEMOS_SQIL = _MT10 + _DEMOS + "[demos.replay]\nshare = 0.5\n[demos.sqil]\n"

# MT-PPO initialised by behaviour cloning on the same demonstrations
MTPPO_BC = (
    MTPPO.replace(
        'name = "cartpole+cartpole-goal"\nnum_tasks = 1\nenvs_per_task = 2',
        'name = "MT10"\nmax_episode_steps = 50',
    )
    .replace("total_steps = 12288", "total_steps = 1280")
    .replace("eval_every = 4096", "eval_every = 640")
    .replace('reward_norm = "return_std"\n', "")
    + _DEMOS
    + "[demos.bc]\nsteps = 20\nbatch_size = 30\nlog_every = 10\n"
)

CONTINUAL_METHODS = ["finetune", "l2", "ewc", "mas", "clonex", "perfect_memory", "packnet", "agem"]


def continual(method: str) -> str:
    """The continual recipe with ``method`` (and its defaults)."""
    text = CONTINUAL.replace('method = "ewc"', f'method = "{method}"')
    return text if method in ("ewc", "mas") else text.replace("importance_samples = 8\n", "")


GOLDEN: dict[str, str] = {
    "mtsac": MTSAC,
    "curriculum": CURRICULUM,
    "mastery": MASTERY,
    "mixture": MIXTURE,
    "async": ASYNC,
    "demos": DEMOS,
    "demos_aqil": DEMOS_AQIL,
    "demos_sqil": DEMOS_SQIL,
    "mtppo": MTPPO,
    "mtppo_bc": MTPPO_BC,
    "sb3": SB3,
    "sine_maml": SINE,
    "sine_metasgd": SINE + '[meta]\nalgorithm = "metasgd"\n',
    "maml_rl": MAML_RL,
    "rl2": RL2,
    "pearl": PEARL,
    **{f"continual_{m}": continual(m) for m in CONTINUAL_METHODS},
}


def derived(recipe: str, *sets: str) -> str:
    """A shared recipe with ``--set``-style changes (``key=value``, ``~key``), as TOML:
    a test that needs a shorter or other run of a kind starts from its recipe here."""
    return tomli_w.dumps(apply_overrides(tomllib.loads(recipe), sets))


def collect_datasets(root: Path) -> Path:
    """MT10's scripted experts, one 50-step episode a task, under ``root``."""
    from mtrl.collect import collect

    collect("MT10", "expert", 1, root, max_episode_steps=50)
    return root


def recipe_text(name: str, datasets: Path | None = None) -> str:
    """The golden recipe ``name`` with its datasets root filled in."""
    text = GOLDEN[name]
    if "@DATASETS@" in text:
        assert datasets is not None, f"{name} needs the datasets root"
        text = text.replace("@DATASETS@", str(datasets))
    return text


# golden runs that test_resume's Ctrl-C/SIGTERM test reproduces (resume test name -> golden
# name): interrupted and resumed, or uninterrupted when the run ends before the signal,
# its metrics and results must equal the golden files, so test_golden leaves them out
RESUMED_GOLDEN = {
    "mtsac": "mtsac",
    "demos": "demos",
    "curriculum": "curriculum",
    "mixture": "mixture",
    "mtppo": "mtppo",
    "sine": "sine_maml",
    "sb3": "sb3",
    "maml_rl": "maml_rl",
    "rl2": "rl2",
    "pearl": "pearl",
}


def assert_short_run_is_seeded(sac: dict[str, object], root: Path) -> Path:
    """Train a 300-step two-goal Navigation2D MT-SAC run with the ``[sac]`` table
    ``sac`` twice (into ``root/a`` and ``root/b``): both end with the same finite
    per-task returns. Returns the first run's directory."""
    import numpy as np

    from mtrl.config import from_dict
    from mtrl.kinds.mtsac import MTSACRecipe, train_mtsac

    base: dict[str, object] = {
        "kind": "mtsac", "total_steps": 300, "learning_starts": 200, "batch_size": 32,
        "eval_every": 300, "eval_episodes": 1, "env": {"name": "navigation2d", "num_tasks": 2},
        "sac": {"actor": {"hidden": [16]}, "critic": {"hidden": [16]}, **sac},
    }  # fmt: skip
    recipe = from_dict(MTSACRecipe, base)
    first = train_mtsac(recipe, root / "a")
    second = train_mtsac(recipe, root / "b")
    returns = [row["return"] for row in first["per_task"]]
    assert returns == [row["return"] for row in second["per_task"]]
    assert all(np.isfinite(returns))
    return root / "a"


def tiny_mt10_demos(root: Path, demos: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A small MT-SAC recipe (as a dict) on MT10 with 50-step episodes and 32-wide nets,
    using the demonstration tables ``demos`` on the datasets at ``root``; ``top`` sets
    or overrides top-level keys."""
    base: dict[str, Any] = {
        "kind": "mtsac",
        "learning_starts": 100,
        "batch_size": 30,
        "eval_episodes": 1,
        "buffer_capacity": 2000,
        "env": {"name": "MT10", "max_episode_steps": 50},
        "sac": {"actor": {"hidden": [32, 32]}, "critic": {"hidden": [32, 32]}},
        "demos": {"dataset": "mtrl/mt10-expert-v0", "root": str(root), **demos},
    }
    return base | top


def tiny_sac(**sac: Any) -> tuple[Any, Any]:
    """A seeded MT-SAC agent (3-d observations, 2-d actions, 2 tasks, 8-unit nets) and a
    replay buffer holding 4 random transitions per task; ``sac`` sets SACConfig fields."""
    import numpy as np
    import torch

    from mtrl.agents.replay import TaskReplayBuffer
    from mtrl.agents.sac import MTSAC, SACConfig
    from mtrl.nets import NetConfig

    torch.manual_seed(0)
    cfg = SACConfig(actor=NetConfig(hidden=[8]), critic=NetConfig(hidden=[8]), **sac)
    agent = MTSAC(cfg, obs_dim=3, act_dim=2, num_tasks=2)
    buf = TaskReplayBuffer(2, 10, 3, 2)
    rng = np.random.default_rng(0)
    for _ in range(4):
        buf.add(
            rng.random((2, 3)), rng.random((2, 2)), rng.random(2), rng.random((2, 3)),
            np.zeros(2), np.array([0, 1]),
        )  # fmt: skip
    return agent, buf
