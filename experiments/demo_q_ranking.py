"""How the critics of a demonstrations run rank the demonstrated actions against
nearby ones: in every demonstration state, K perturbations N(0, sigma^2) of the
demonstrated action (clipped to [-1, 1]) are valued with the lower of the twin
critics; printed per run: the share of states where the best perturbation is valued
above the demonstrated action, and the mean excess value of the perturbations
(0 where below). Critics that keep an expert's actions on top print shares near 0.

    python experiments/demo_q_ranking.py runs/ibrl1_mt10 runs/cons1_mt10 [--sigma 0.1]
"""

from __future__ import annotations

import argparse

import torch

import mtrl


def ranking(run_dir: str, sigma: float, k: int, seed: int = 0) -> tuple[float, float, str]:
    run = mtrl.load(run_dir)
    demos_cfg = run.recipe.demos
    env = run.make_env()
    demos = demos_cfg.transitions(env)
    env.close()
    agent = run.model
    obs = torch.as_tensor(demos["obs"], dtype=torch.float32)
    act = torch.as_tensor(demos["action"], dtype=torch.float32)
    tid = torch.as_tensor(demos["task_id"], dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        q_demo = torch.minimum(*agent.critic(obs, act, tid))
        noise = torch.randn((len(act), k, act.shape[1]), generator=g)
        near = (act.unsqueeze(1) + sigma * noise).clamp(-1.0, 1.0).reshape(len(act) * k, -1)
        rep = obs.repeat_interleave(k, dim=0)
        q_near = torch.minimum(*agent.critic(rep, near, tid.repeat_interleave(k))).reshape(-1, k)
    beaten = (q_near.max(dim=1).values > q_demo).float().mean()
    excess = torch.relu(q_near - q_demo.unsqueeze(1)).mean()
    return float(beaten), float(excess), run.checkpoint.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--sigma", type=float, default=0.1)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    print("| run | checkpoint | states where a perturbation wins | mean excess Q |")
    print("|---|---|---|---|")
    for run_dir in args.runs:
        beaten, excess, ckpt = ranking(run_dir, args.sigma, args.k)
        print(f"| {run_dir} | {ckpt} | {beaten:.0%} | {excess:.3f} |")


if __name__ == "__main__":
    main()
