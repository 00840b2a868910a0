"""What a self-imitation run's collected episodes are worth without RL: a fresh actor
cloned (the run's seed and [demos] settings) on the dataset's demonstrations plus the
successful episodes the run's newest checkpoint holds, evaluated as a run's step-0
clone is. Printed: episodes per task, and mean and per-task success.

    python experiments/reclone.py runs/sil2_mt10 [--bc-steps 10000]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

import numpy as np

import mtrl
from mtrl.demos.warm_start import Phases, WarmStart
from mtrl.kinds.mtsac import evaluate_agent, make_agent
from mtrl.runs import RunDir
from mtrl.seeding import seed_everything


def with_imitated(demos: dict[str, np.ndarray], added: list[Any]) -> dict[str, np.ndarray]:
    """The dataset's transitions followed by the imitated episodes (task ids attached)."""
    out = {k: [v] for k, v in demos.items()}
    for task, rows in added:
        for key in ("obs", "action", "reward", "next_obs", "terminated"):
            out[key].append(np.asarray(rows[key], dtype=np.float32))
        out["task_id"].append(np.full(len(rows["obs"]), task, dtype=demos["task_id"].dtype))
    return {k: np.concatenate(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--bc-steps", type=int, default=None)
    args = parser.parse_args()
    loaded = mtrl.load(args.run)
    recipe = loaded.recipe
    cfg = recipe.demos
    state = RunDir.open(args.run).load_checkpoint()
    added = (state.get("self_imitation") or {}).get("added", [])
    env = loaded.make_env()
    demos = cfg.transitions(env)
    demos = with_imitated(demos, added)
    bc = cfg.bc if args.bc_steps is None else replace(cfg.bc, steps=args.bc_steps)
    seed_everything(recipe.seed)
    agent = make_agent(recipe, env, balanced=True)
    env.close()

    def evaluate() -> list[dict[str, Any]]:
        return evaluate_agent(agent, recipe, recipe.eval_episodes, recipe.seed + 1)

    logged: list[dict[str, Any]] = []
    args_ = (
        lambda row: logged.append(dict(row)),
        evaluate,
        None,
        recipe.seed,
        recipe.batch_size,
        recipe.device,
    )
    WarmStart(agent, Phases(bc, None, None), demos, None, None, *args_).before_loop()
    [clone] = [row for row in logged if "eval_success" in row]  # the clone's evaluation
    metrics = {**clone, "step": int(state["steps"])}
    per = np.bincount([t for t, _ in added], minlength=env.num_tasks)
    print(f"{args.run} at step {state['steps']}: imitated episodes per task {per.tolist()}")
    print(f"re-cloned mean success {metrics['eval_success']:.2f}; per task:")
    print([round(float(metrics[f"success/{i}"]), 2) for i in range(env.num_tasks)])


if __name__ == "__main__":
    main()
