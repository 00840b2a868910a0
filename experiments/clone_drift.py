"""Where a Meta-World clone goes wrong: its squared action error against the scripted
expert on the demonstrations' states (how well it fits) and on the states it reaches
itself (how far its own mistakes carry it off the demonstrations: covariate shift).
Each task's sub-env runs ``--episodes`` evaluation episodes of the run's deterministic
policy; errors on its own states count steps up to the episode's first success (the
part success depends on). Errors are in units of 1e-3; "ratio" is own over demo.

    python experiments/clone_drift.py runs/bc20cos_s0 [--dataset mtrl/mt10-expert-v0]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import mtrl
from mtrl.collect import datasets_root
from mtrl.envs.policies import metaworld_expert_policy
from mtrl.tables import format_table


def own_state_errors(run: Any, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per sub-env: mean squared action error against the expert on the states the
    policy visits before its first success, and the share of episodes that succeed."""
    env = run.make_env()
    expert = metaworld_expert_policy(env.tasks, env.task_ids)
    low, high = env.single_action_space.low, env.single_action_space.high
    n = env.num_envs
    err_sum, err_n, wins = np.zeros(n), np.zeros(n), np.zeros(n)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, won = np.zeros(n, bool), np.zeros(n, bool)
        while not done.all():
            action = run.act(obs["observation"], obs["task_id"])
            sq = ((action - np.clip(expert(obs), low, high)) ** 2).sum(-1)
            live = ~done & ~won
            err_sum += np.where(live, sq, 0.0)
            err_n += live
            obs, _, term, trunc, info = env.step(action)
            won |= ~done & (np.asarray(info.get("success", np.zeros(n))) > 0)
            done |= np.asarray(term) | np.asarray(trunc)
        wins += won
    env.close()
    return err_sum / np.maximum(err_n, 1), wins / episodes


def demo_state_errors(
    run: Any, dataset: str, root: str, tasks: int, low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """Per task: mean squared action error on every demonstrated state (the expert's
    actions clipped to the action space, as the actor is cloned on them)."""
    import minari

    sums, counts = np.zeros(tasks), np.zeros(tasks)
    with datasets_root(root):
        data = minari.load_dataset(dataset)
        for ep in data.iterate_episodes():
            obs = ep.observations["observation"][:-1]
            task = int(ep.observations["task_id"][0])
            act = run.act(obs, np.full(len(obs), task))
            sums[task] += ((act - np.clip(ep.actions, low, high)) ** 2).sum()
            counts[task] += len(obs)
    return sums / np.maximum(counts, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--dataset", default="mtrl/mt10-expert-v0")
    parser.add_argument("--root", default="datasets")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()
    run = mtrl.load(args.run)
    env = run.make_env()
    labels, ids = [t.label for t in env.tasks], env.task_ids.tolist()
    low, high = env.single_action_space.low, env.single_action_space.high
    env.close()
    own, success = own_state_errors(run, args.episodes, args.seed)
    demo = demo_state_errors(run, args.dataset, args.root, len(labels), low, high)
    rows = [
        {
            "task": labels[t],
            "demo states (1e-3)": float(demo[t] * 1e3),
            "own states (1e-3)": float(own[i] * 1e3),
            "ratio": float(own[i] / demo[t]),
            "success": float(success[i]),
        }
        for i, t in enumerate(ids)
    ]
    print(format_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
