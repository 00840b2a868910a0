"""Success of a trained MT-SAC policy (e.g. a clone) acting on its mean, sampling at
its own spread, and sampling at fixed spreads: what its data looks like where SAC
starts from it (docs/results/finetune-mt1.md).

    python experiments/clone_noise.py RUN_DIR [--episodes 50] [--stds 0.05,0.1,0.3]

Each row is one policy over ``--episodes`` episodes of every task (evaluation resets,
seed ``--seed``): ``mean`` acts ``tanh(mean)``; ``own`` samples ``tanh(mean + std * e)``
with the actor's own std (reported as its average over the visited states); a number
samples with that std in every state.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch

import mtrl
from mtrl.envs.rollout import rollout


def noisy_policy(
    run: mtrl.TrainedRun, std: float | None, seed: int, stds: list[float]
) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """Actions in [-1, 1] (Meta-World's action space): the mean with ``std = 0``, the
    actor's own spread with ``None`` (its std appended to ``stds`` each step)."""
    gen = torch.Generator().manual_seed(seed)
    actor = run.model.actor

    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        o = torch.as_tensor(np.asarray(obs["observation"], dtype=np.float32))
        with torch.no_grad():
            mean, log_std = actor(o, torch.as_tensor(obs["task_id"]))
            spread = log_std.exp() if std is None else torch.full_like(mean, std)
            stds.append(float(spread.mean()))
            return torch.tanh(mean + spread * torch.randn(mean.shape, generator=gen)).numpy()

    return act


def _stds(text: str) -> list[float]:
    """``"0.05,0.1"`` -> ``[0.05, 0.1]``; a clear argparse error for anything else."""
    try:
        stds = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--stds takes numbers like 0.05,0.1, got {text!r}"
        ) from None
    if any(s <= 0.0 for s in stds):
        raise argparse.ArgumentTypeError(
            f"--stds must be > 0 (0 is the 'mean' row), got {text!r}"
        ) from None
    return stds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--stds", type=_stds, default="0.05,0.1,0.3", help='"": none')
    p.add_argument("--seed", type=int, default=123)
    args = p.parse_args()
    run = mtrl.load(args.run_dir)
    env = run.make_env()
    low, high = env.single_action_space.low, env.single_action_space.high
    if not (np.all(low == -1.0) and np.all(high == 1.0)):
        raise SystemExit("clone_noise.py: the env's actions must lie in [-1, 1]")
    rows: list[tuple[str, float | None]] = [("mean", 0.0), ("own", None)]
    rows += [(f"{s:g}", s) for s in args.stds]
    print("| policy | std (pre-tanh) | success |\n|---|---|---|")
    for name, std in rows:
        seen: list[float] = []
        stats = rollout(env, noisy_policy(run, std, args.seed, seen), args.episodes, args.seed)
        success = np.mean([s["success"] for s in stats])
        print(f"| {name} | {np.mean(seen):.2f} | {success:.2f} |")
    env.close()


if __name__ == "__main__":
    main()
