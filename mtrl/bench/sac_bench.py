"""`mtrl bench sac`: gradient updates/s of mtrl's MT-SAC and SB3's SAC, same sizes.

Both learn from the same replay data: random-action transitions collected from the
real MT10 vector env (39-dim observations, 4-dim actions, 10 task ids). Networks are
the Meta-World baseline's (3 x 400 units, one-hot task ids appended to the input,
twin critics), batch 1280. A timed block is ``updates`` calls of mtrl's
``MTSAC.update`` or SB3's ``SAC.train(gradient_steps=updates)``; blocks alternate and
the median is reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from mtrl.agents.distributional import HLGaussConfig
from mtrl.agents.replay import TaskReplayBuffer
from mtrl.agents.sac import MTSAC, SACConfig
from mtrl.envs.vector import MultiTaskEnvConfig, make_multitask_env
from mtrl.nets import NetConfig


def _collect(transitions: int, seed: int) -> dict[str, np.ndarray]:
    env = make_multitask_env(MultiTaskEnvConfig(name="MT10"))
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    keys = ("obs", "task", "act", "rew", "next_obs", "done", "final")
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    try:
        while len(out["rew"]) * env.num_envs < transitions:
            act = rng.uniform(-1, 1, size=(env.num_envs, 4)).astype(np.float32)
            nxt, rew, term, trunc, info = env.step(act)
            real = nxt["observation"].copy()
            for i in np.flatnonzero(term | trunc):
                real[i] = info["final_obs"][i]["observation"]
            out["obs"].append(obs["observation"])
            out["task"].append(obs["task_id"])
            out["act"].append(act)
            out["rew"].append(rew.astype(np.float32))
            out["next_obs"].append(real)
            out["done"].append(term.astype(np.float32))
            out["final"].append(trunc)
            obs = nxt
    finally:
        env.close()
    return {k: np.concatenate(v) for k, v in out.items()}


def _mtrl_timer(
    data: dict[str, np.ndarray], batch: int, sac: SACConfig, device: str = "cpu"
) -> Callable[[int], float]:
    agent = MTSAC(sac, 39, 4, 10).to(device)
    buf = TaskReplayBuffer(10, len(data["rew"]), 39, 4, device=device)
    buf.add(data["obs"], data["act"], data["rew"], data["next_obs"], data["done"], data["task"])
    gen = torch.Generator().manual_seed(0)

    def run(updates: int) -> float:
        t0 = time.perf_counter()
        for _ in range(updates):
            agent.update(buf.sample(batch, gen))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    return run


def variants(
    hidden: list[int], compile: bool, critics: Sequence[int], options: Sequence[str]
) -> dict[str, SACConfig]:
    """The MT-SAC configurations timed, by name: the plain update first, then each
    option on the same sizes (``options``: ``residual``, BRO's critic body of the same
    width and about the same depth; ``hl_gauss``, 101-bin categorical critics)."""
    net = NetConfig(arch="shared", hidden=hidden)
    out = {"mtrl MT-SAC": SACConfig(actor=net, critic=net)}
    if compile:
        out["mtrl MT-SAC (compiled)"] = SACConfig(actor=net, critic=net, compile=True)
    for n in critics:
        out[f"mtrl MT-SAC, {n} critics"] = SACConfig(
            actor=net, critic=net, critics=n, actor_q="mean"
        )
    if "residual" in options:
        blocks = max(1, (len(hidden) - 1) // 2)
        body = NetConfig(arch="residual", hidden=hidden[:1], residual_blocks=blocks)
        out["mtrl MT-SAC, residual critics"] = SACConfig(actor=net, critic=body)
    if "hl_gauss" in options:
        out["mtrl MT-SAC, HL-Gauss critics"] = SACConfig(
            actor=net, critic=net, hl_gauss=HLGaussConfig()
        )
    return out


def _sb3_timer(
    data: dict[str, np.ndarray], batch: int, hidden: list[int], device: str = "cpu"
) -> Callable[[int], float]:
    from stable_baselines3 import SAC

    from mtrl.agents.sb3 import SB3MultiTaskVecEnv, TaskConditionedSACPolicy

    env = SB3MultiTaskVecEnv(make_multitask_env(MultiTaskEnvConfig(name="MT10")))
    model = SAC(
        TaskConditionedSACPolicy,
        env,
        batch_size=batch,
        buffer_size=len(data["rew"]),
        learning_starts=0,
        policy_kwargs={"net_arch": hidden},
        device=device,
        seed=0,
    )
    n = env.num_envs
    replay: Any = model.replay_buffer  # SB3's DictReplayBuffer for Dict observations
    for s in range(0, len(data["rew"]), n):
        sl = slice(s, s + n)
        replay.add(
            {"observation": data["obs"][sl], "task_id": data["task"][sl]},
            {"observation": data["next_obs"][sl], "task_id": data["task"][sl]},
            data["act"][sl],
            data["rew"][sl],
            data["done"][sl],
            [{"TimeLimit.truncated": bool(t)} for t in data["final"][sl]],
        )
    env.close()
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(None, []))  # no console/file output during timing

    def run(updates: int) -> float:
        t0 = time.perf_counter()
        model.train(gradient_steps=updates, batch_size=batch)
        return time.perf_counter() - t0

    return run


def bench_sac(
    updates: int = 20,
    repeats: int = 3,
    batch: int = 1280,
    hidden: list[int] | None = None,
    transitions: int = 5000,
    threads: int = 0,
    compile: bool = False,
    device: str = "cpu",
    critics: Sequence[int] = (),
    options: Sequence[str] = (),
) -> dict[str, Any]:
    """Updates/s of both implementations and the ratio mtrl / SB3 (``compile`` adds
    mtrl's torch.compile'd update; each of ``critics`` an ensemble of that many
    Q-networks, target min over two, actor on their mean; each of ``options`` a critic
    option: what each costs)."""
    if threads:
        torch.set_num_threads(threads)
    sizes = hidden or [400, 400, 400]
    data = _collect(transitions, seed=0)
    configs = variants(sizes, compile, critics, options)
    timers = {name: _mtrl_timer(data, batch, sac, device) for name, sac in configs.items()}
    timers["SB3 SAC"] = _sb3_timer(data, batch, sizes, device)
    for run in timers.values():
        run(2)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in timers}
    for _ in range(repeats):
        for name, run in timers.items():
            times[name].append(run(updates))
    ups = {k: updates / statistics.median(v) for k, v in times.items()}
    return {
        "batch": batch,
        "hidden": sizes,
        "updates": updates,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "device": device,
        "torch": torch.__version__,
        "updates_per_s": ups,
        "ratio": ups["mtrl MT-SAC"] / ups["SB3 SAC"],
        "ratio_compiled": (ups["mtrl MT-SAC (compiled)"] / ups["SB3 SAC"] if compile else None),
        "ratio_critics": {n: ups[f"mtrl MT-SAC, {n} critics"] / ups["SB3 SAC"] for n in critics},
        "ratios": {k: v / ups["SB3 SAC"] for k, v in ups.items() if k != "SB3 SAC"},
        "parameters": {k: _parameters(sac) for k, sac in configs.items()},
    }


def _parameters(sac: SACConfig) -> int:
    """Trainable parameters of the actor and the critics (target critics not counted)."""
    agent = MTSAC(sac, 39, 4, 10)
    nets = (agent.actor, agent.critic)
    return sum(p.numel() for net in nets for p in net.parameters())
