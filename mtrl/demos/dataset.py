"""Reading demonstration datasets: what is stored, per-task summaries, and transitions
checked against the env a recipe trains on."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from mtrl.demos.store import DEFAULT_ROOT, datasets_root
from mtrl.errors import MtrlError


def open_dataset(ident: str, root: str | Path = DEFAULT_ROOT) -> Any:
    """The Minari dataset ``ident`` under ``root``; a missing one names the command
    that makes it."""
    import minari

    with datasets_root(root) as path:
        if not (path / ident / "data").is_dir():
            raise MtrlError(
                f"no dataset {ident!r} under {path}; collect it first: `mtrl demos collect "
                f"NAME --policy expert|RUN_DIR --episodes N --out {root}` (`mtrl demos "
                f"list --root {root}` shows what is there)"
            )
        return minari.load_dataset(ident)


def list_datasets(root: str | Path = DEFAULT_ROOT) -> list[dict[str, Any]]:
    """Every dataset under ``root``: id, episodes, steps, env, tasks, policy."""
    import minari

    with datasets_root(root):
        found = minari.list_local_datasets()
    rows = []
    for ident, meta in sorted(found.items()):
        rows.append(
            {
                "dataset": ident,
                "episodes": int(meta.get("total_episodes", 0)),
                "steps": int(meta.get("total_steps", 0)),
                "env": meta.get("mtrl_env", "?"),
                "tasks": len(meta.get("mtrl_tasks", []) or []),
                "policy": meta.get("mtrl_policy", meta.get("algorithm_name", "?")),
            }
        )
    return rows


def episode_success(episode: Any) -> float:
    """1.0 if an episode's success flag is ever set, 0.0 if never, NaN when the
    dataset stores no success flags (envs without one)."""
    success = np.asarray(episode.infos.get("success", [math.nan]), dtype=np.float64)
    return math.nan if np.isnan(success).all() else float(np.nanmax(success) > 0)


def per_task_summary(dataset: Any) -> list[dict[str, Any]]:
    """Episodes, mean return and success rate (an episode succeeds if it ever does) per
    task of a dataset."""
    tasks = list(dataset.storage.metadata.get("mtrl_tasks", []))
    stats: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for ep in dataset.iterate_episodes():
        tid = int(ep.observations["task_id"][0])
        stats[tid].append((float(np.sum(ep.rewards)), episode_success(ep)))
    rows = []
    for tid in sorted(stats):
        returns = [r for r, _ in stats[tid]]
        hits = [h for _, h in stats[tid] if not math.isnan(h)]
        rows.append(
            {
                "task_id": tid,
                "task": tasks[tid] if tid < len(tasks) else str(tid),
                "episodes": len(returns),
                "return": float(np.mean(returns)),
                "success": float(np.mean(hits)) if hits else math.nan,
            }
        )
    return rows


def check_matches(dataset: Any, env: Any) -> None:
    """Refuse a dataset whose observation/action shapes or task list differ from the
    multi-task env ``env``, naming both."""
    obs_space = dataset.observation_space["observation"]
    env_obs = env.single_observation_space["observation"]
    if obs_space.shape != env_obs.shape or dataset.action_space.shape != (
        env.single_action_space.shape
    ):
        raise MtrlError(
            f"dataset {dataset.spec.dataset_id} has observations {obs_space.shape} and "
            f"actions {dataset.action_space.shape}; the recipe's env has "
            f"{env_obs.shape} and {env.single_action_space.shape}"
        )
    tasks = list(dataset.storage.metadata.get("mtrl_tasks", []))
    labels = [t.label for t in env.tasks]
    if tasks and tasks != labels:
        raise MtrlError(
            f"dataset {dataset.spec.dataset_id} holds tasks {tasks}; the recipe's env has {labels}"
        )


def transitions(
    dataset: Any, episodes_per_task: int | None = None, successes_only: bool = False
) -> dict[str, np.ndarray]:
    """All steps as flat arrays: ``obs``, ``action``, ``reward``, ``next_obs``,
    ``terminated``, ``task_id`` (for behaviour cloning and demo replay) and ``success``
    (the env's flag after each step; NaN where the dataset stores none); with
    ``episodes_per_task``, only each task's first episodes in collection order; with
    ``successes_only``, only the episodes that succeed (counted before that limit)."""
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    kept: dict[int, int] = defaultdict(int)
    seen: set[int] = set()
    for ep in dataset.iterate_episodes():
        tid = int(ep.observations["task_id"][0])
        seen.add(tid)
        if successes_only and _failed(dataset, ep):
            continue
        if episodes_per_task is not None and kept[tid] >= episodes_per_task:
            continue
        kept[tid] += 1
        o = np.asarray(ep.observations["observation"], dtype=np.float32)
        parts["obs"].append(o[:-1])
        parts["next_obs"].append(o[1:])
        parts["action"].append(np.asarray(ep.actions, dtype=np.float32))
        parts["reward"].append(np.asarray(ep.rewards, dtype=np.float32))
        flags = ep.infos.get("success", np.full(len(ep.rewards), np.nan))
        parts["success"].append(np.asarray(flags, dtype=np.float32))
        parts["terminated"].append(np.asarray(ep.terminations, dtype=np.float32))
        parts["task_id"].append(np.asarray(ep.observations["task_id"][:-1], dtype=np.int64))
    if not seen:
        raise MtrlError(f"dataset {dataset.spec.dataset_id} holds no episodes")
    none = sorted(seen - set(kept))
    if none:
        raise MtrlError(
            f"demos.successes_only: dataset {dataset.spec.dataset_id} has no successful "
            f"episode for tasks {none} (task ids); collect more episodes or set it false"
        )
    short = {t: k for t, k in kept.items() if episodes_per_task and k < episodes_per_task}
    if short:
        which = "successful episodes" if successes_only else "episodes"
        raise MtrlError(
            f"demos.episodes_per_task = {episodes_per_task}, but dataset "
            f"{dataset.spec.dataset_id} holds fewer {which} for tasks {short} (task id: "
            "count); lower it or collect more episodes"
        )
    return {k: np.concatenate(v) for k, v in parts.items()}


def success_rewards(demos: dict[str, np.ndarray], dataset_id: str) -> np.ndarray:
    """The demonstrations' rewards under ``env.reward_version = "success"``: 1 at each
    step whose success flag is set, else 0, as the env now rewards the agent's own
    steps; a dataset without success flags is refused."""
    flags = demos["success"]
    if np.isnan(flags).any():
        raise MtrlError(
            f"env.reward_version = 'success', but dataset {dataset_id} stores no success "
            "flags for some steps; collect it from an env that reports them (Meta-World)"
        )
    return (flags > 0).astype(np.float32)


def _failed(dataset: Any, episode: Any) -> bool:
    """Whether an episode never succeeds; a dataset without success flags is refused."""
    hit = episode_success(episode)
    if math.isnan(hit):
        raise MtrlError(
            f"demos.successes_only: dataset {dataset.spec.dataset_id} stores no success "
            "flags (its env reports none); set it false"
        )
    return hit == 0.0


def demo_transitions(
    dataset_id: str,
    root: str | Path,
    env: Any,
    episodes_per_task: int | None = None,
    normalize: bool = True,
    successes_only: bool = False,
) -> dict[str, np.ndarray]:
    """The transitions of a dataset checked against ``env``; Box actions clipped to the
    env's bounds (what the env would apply; scripted experts exceed them) and, unless
    ``normalize`` is false, rescaled to [-1, 1] (the SAC actor's range)."""
    from mtrl.demos.bc import normalize_actions

    data = open_dataset(dataset_id, root)
    check_matches(data, env)
    out = transitions(data, episodes_per_task, successes_only)
    space = env.single_action_space
    if isinstance(space, gym.spaces.Box):
        a = out["action"]
        a = (
            normalize_actions(a, space.low, space.high)
            if normalize
            else np.clip(a, space.low, space.high)
        )
        out["action"] = a.astype(np.float32)
    return out
