"""`mtrl demos collect`: per-task demonstration episodes written as a Minari dataset.

Episodes come from Meta-World's scripted experts or a trained mtrl run, one sub-env
per task of the suite, and are appended to the dataset as they finish (so an
interrupted collection keeps what it has). Observations are the multi-task env's
Dict observations (``observation`` and ``task_id``); ``infos["success"]`` is stored
per step. The dataset's metadata records the env, its task list, the Meta-World
reward version, the collecting policy and the seed (keys ``mtrl_*``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtrl.demos.store import DATASET_ID, DEFAULT_ROOT, dataset_id, datasets_root
from mtrl.envs.policies import expert_policy
from mtrl.errors import MtrlError


@dataclass
class _Episode:
    """One sub-env's episode in progress."""

    obs: list[np.ndarray] = field(default_factory=list)
    task: list[int] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terms: list[bool] = field(default_factory=list)
    truncs: list[bool] = field(default_factory=list)
    success: list[float] = field(default_factory=list)

    def buffer(self, seed: int | None) -> Any:
        from minari.data_collector.episode_buffer import EpisodeBuffer

        return EpisodeBuffer(
            seed=seed,
            observations={
                "observation": np.stack(self.obs).astype(np.float32),
                "task_id": np.asarray(self.task, dtype=np.int64),
            },
            actions=np.stack(self.actions).astype(np.float32),
            rewards=list(self.rewards),
            terminations=list(self.terms),
            truncations=list(self.truncs),
            infos={"success": np.asarray(self.success, dtype=np.float64)},
        )


def policy_actions(policy: str, env: Any, trained: Any) -> Callable[[Any], np.ndarray]:
    """Env-scale actions per sub-env: Meta-World's scripted experts when ``trained`` is
    None (a clear error for other families), else the trained run's deterministic ones."""
    if trained is None:
        return expert_policy(env)
    return lambda obs: trained.act(obs["observation"], obs["task_id"], deterministic=True)


def _env_config(
    name: str, policy: str, reward_version: str, steps: int | None, tasks: list[str] | None
) -> Any:
    """The env to collect on: the suite ``name`` (or the ``tasks`` of it), or for a
    trained run the tasks it was trained on (which must be of ``name``)."""
    import dataclasses

    from mtrl.envs.vector import MultiTaskEnvConfig, eval_env_config

    if policy == "expert":
        return MultiTaskEnvConfig(
            name=name,
            tasks=tasks,
            autoreset_mode="next_step",
            reward_version=reward_version,  # type: ignore[arg-type]
            max_episode_steps=steps,
        )
    from mtrl.recipes import load_run

    _, _, recipe = load_run(policy)
    env = getattr(recipe, "env", None)
    if not isinstance(env, MultiTaskEnvConfig):
        raise MtrlError(f"{policy} is not a multi-task policy run")
    if env.label != MultiTaskEnvConfig(name=name).label:
        raise MtrlError(f"{policy} was trained on {env.label!r}, not {name!r}")
    if tasks is not None:
        raise MtrlError(
            f"--tasks picks a suite's tasks for the experts; {policy} collects on the "
            "tasks it was trained on (its task ids index them)"
        )
    return dataclasses.replace(
        eval_env_config(env),
        autoreset_mode="next_step",
        max_episode_steps=steps if steps is not None else env.max_episode_steps,
    )


def collect(
    name: str,
    policy: str,
    episodes: int,
    root: str | Path = DEFAULT_ROOT,
    seed: int = 0,
    reward_version: str = "v2",
    max_episode_steps: int | None = None,
    progress: bool = False,
    tasks: list[str] | None = None,
    ident: str | None = None,
) -> str:
    """Collect ``episodes`` episodes per task of ``name`` (or of its ``tasks``, by
    label) with ``policy`` ("expert" or a run directory) into a Minari dataset under
    ``root``, named ``ident`` (default :func:`dataset_id`); returns its id."""
    from minari import create_dataset_from_buffers as create

    from mtrl.envs.vector import make_multitask_env
    from mtrl.training import progress_bar

    if episodes < 1:
        raise MtrlError(f"--episodes must be >= 1, got {episodes}")
    if policy != "expert" and not (Path(policy) / "config.toml").is_file():
        raise MtrlError(f"--policy takes 'expert' or a run directory; {policy!r} is neither")
    if ident is not None and not DATASET_ID.match(ident):
        raise MtrlError(f"--id {ident!r} is not a Minari id ('namespace/name-vN')")
    cfg = _env_config(name, policy, reward_version, max_episode_steps, tasks)
    ident = ident or dataset_id(name, policy, tasks)
    trained = None
    if policy != "expert":
        from mtrl.loading import load

        trained = load(policy)
    env = make_multitask_env(cfg)
    act = policy_actions(policy, env, trained)
    n = env.num_envs
    bar = progress_bar(progress, episodes * env.num_tasks, 0, "episodes", "ep")
    with datasets_root(root) as path:
        if (path / ident).exists():
            raise MtrlError(
                f"{path / ident} already exists; pick another --out or delete it "
                f"(minari delete {ident})"
            )
        dataset = None
        done = np.zeros(n, dtype=np.int64)
        finished: list[Any] = []

        def flush() -> None:
            nonlocal dataset
            if not finished:
                return
            if dataset is None:
                with warnings.catch_warnings():  # authoring hints (email, permalink, env spec)
                    warnings.simplefilter("ignore", UserWarning)
                    dataset = create(
                        ident,
                        list(finished),
                        observation_space=env.single_observation_space,
                        action_space=env.single_action_space,
                        algorithm_name=policy,
                        author="mtrl",
                        description=f"{name}: {policy} demonstrations collected by mtrl",
                    )
                dataset.storage.update_metadata(
                    {
                        "mtrl_env": name,
                        "mtrl_tasks": [t.label for t in env.tasks],
                        "mtrl_reward_version": cfg.reward_version,
                        "mtrl_policy": policy,
                        "mtrl_seed": seed,
                    }
                )
            else:
                dataset.update_dataset_from_buffer(list(finished))
            finished.clear()

        try:
            obs, _ = env.reset(seed=seed)
            eps = [_Episode() for _ in range(n)]
            for i, ep in enumerate(eps):
                ep.obs.append(np.array(obs["observation"][i]))
                ep.task.append(int(obs["task_id"][i]))
            while (done < episodes).any():
                action = np.asarray(act(obs), dtype=np.float32)
                obs, rew, term, trunc, info = env.step(action)
                for i in range(n):
                    ep = eps[i]
                    if ep.obs == []:  # this step was the autoreset after an episode end
                        ep.obs.append(np.array(obs["observation"][i]))
                        ep.task.append(int(obs["task_id"][i]))
                        continue
                    ep.actions.append(np.array(action[i]))
                    ep.rewards.append(float(rew[i]))
                    ep.terms.append(bool(term[i]))
                    ep.truncs.append(bool(trunc[i]))
                    ep.success.append(float(info.get("success", np.full(n, np.nan))[i]))
                    ep.obs.append(np.array(obs["observation"][i]))
                    ep.task.append(int(obs["task_id"][i]))
                    if term[i] or trunc[i]:
                        if done[i] < episodes:
                            finished.append(ep.buffer(seed if done[i] == 0 else None))
                            done[i] += 1
                            if bar is not None:
                                bar.update(1)
                        eps[i] = _Episode()
                if len(finished) >= n:
                    flush()
        finally:
            flush()  # an interrupted collection keeps the finished episodes
            env.close()
            if bar is not None:
                bar.close()
    return ident
