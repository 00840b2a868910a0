"""Scaffolding shared by every training loop: opening the run (one writer, locked),
progress bars, checkpoints, deferred Ctrl-C, and resuming with metrics rolled back."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mtrl.errors import ConfigError
from mtrl.runs import RunDir, warn
from mtrl.seeding import global_rng_state, seed_everything, set_global_rng_state


def open_run(recipe: Any, run_dir: str | Path, resume: bool) -> RunDir:
    """Create (or reopen, when resuming) the run directory and hold its lock (one
    writer per run), set threads, seed everything. A device this machine lacks is
    refused before the directory exists."""
    check_device(str(getattr(recipe, "device", "cpu")))
    run = RunDir.create(run_dir, recipe, exist_ok=resume)
    run.acquire()
    threads = int(getattr(recipe, "threads", 0))
    if threads:
        import torch

        torch.set_num_threads(threads)
    seed_everything(recipe.seed)
    return run


def check_device(device: str) -> None:
    """A ConfigError unless torch can use ``device`` on this machine."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"device = {device!r} is not a torch device; use 'cpu', 'cuda' or 'cuda:N'"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "no visible GPU"
            raise ConfigError(
                f"device = {device!r} but this torch {torch.__version__} has {build}; "
                "use device = 'cpu', or install a CUDA build of torch (TORCH_INDEX_URL in "
                "scripts/setup.sh)"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device = {device!r} but only {torch.cuda.device_count()} GPU(s) are visible"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device = {device!r} is not available here; use device = 'cpu'")


def progress_bar(
    enabled: bool, total: int, initial: int, desc: str, unit: str, run: RunDir | None = None
) -> Any:
    """When ``enabled``: a tqdm bar on an interactive terminal, else a line every 30 s
    (:class:`~mtrl.progress.ProgressLog`) that shows the newest return/success ``run``
    logs; None when not enabled (library use)."""
    if not enabled:
        return None
    if not sys.stderr.isatty():
        from mtrl.progress import ProgressLog

        log = ProgressLog(total, initial, desc, unit)
        if run is not None:
            run.watchers.append(log.note)
        return log
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit)


class Checkpointer:
    """When a training loop saves its resumable state: every ``every`` steps before the
    last (:meth:`step`), and on Ctrl-C and at the end (:meth:`save`, called by the loop).
    ``state(step)`` builds what to save (the run directory adds the number of metrics
    rows written so far, so that a resume rolls back the rows logged after the
    checkpoint). Only the newest ``keep`` checkpoints stay (None: all)."""

    def __init__(
        self,
        run: RunDir,
        every: int,
        total: int,
        start: int,
        state: Callable[[int], Mapping[str, Any]],
        keep: int | None = None,
    ) -> None:
        self.run, self.every, self.total, self.state = run, every, total, state
        self.keep = keep
        self.next = (start // every + 1) * every

    def step(self, step: int) -> None:
        """Save if ``step`` reached the next multiple of ``every`` (and is not the last)."""
        if step < self.next:
            return
        if step < self.total:
            self.save(step)
        while self.next <= step:
            self.next += self.every

    def save(self, step: int) -> None:
        self.run.save_checkpoint(self.state(step), step, keep=self.keep)


def resume_state(run: RunDir, resume: bool) -> dict[str, Any] | None:
    """The newest intact checkpoint when resuming (metrics.csv rolled back to the rows
    it had then), else None. Resuming a run without a checkpoint starts it over, with
    a warning, from an empty metrics.csv."""
    if not resume:
        return None
    for partial in run.checkpoints.glob("*.pt.tmp"):  # a write cut short (kill -9)
        partial.unlink(missing_ok=True)
    if not run.checkpoint_paths():
        dropped = run.truncate_metrics(0)
        warn(
            f"{str(run.path)!r} has no checkpoint to resume from; starting it over"
            + (f" (dropped {dropped} metrics rows)" if dropped else "")
        )
        return None
    state = run.load_checkpoint()
    rows = state.get("metric_rows")
    if rows is not None:
        run.truncate_metrics(int(rows))
    return state


def capture_loop(
    env: Any, obs: Any, elapsed: float, snapshot_env: bool, rng: Any = None, **counters: Any
) -> dict[str, Any]:
    """What a loop needs besides its networks to continue exactly: the global RNG
    streams (and the loop's own NumPy ``rng``), the env's state and current
    observation (sync envs, when ``snapshot_env``), the seconds trained so far and the
    loop's ``counters``."""
    return {
        "global_rng": global_rng_state(),
        "rng": rng.bit_generator.state if rng is not None else None,
        "env": env.state() if snapshot_env else None,
        "obs": obs,
        "elapsed": elapsed,
        **counters,
    }


def restore_loop(loop: Mapping[str, Any], env: Any, rng: Any = None) -> Any:
    """Put back :func:`capture_loop`'s state; returns the observation to continue
    from, or None when the env was not snapshotted (the loop then resets it)."""
    set_global_rng_state(loop["global_rng"])
    if rng is not None and loop.get("rng") is not None:
        rng.bit_generator.state = loop["rng"]
    if loop.get("env") is None:
        return None
    env.load_state(loop["env"])
    return loop["obs"]


def divergence_advice(run: RunDir, settings: str) -> str:
    """What to do after a run diverged: which checkpoint is intact (if any), and how to
    start a new run from it with lower ``settings`` (e.g. "sac.actor_lr=...")."""
    paths = run.checkpoint_paths()
    if not paths:
        return (
            f"no checkpoint was written yet; lower {settings} and start the run again "
            "(`mtrl train RECIPE --set KEY=VALUE`)"
        )
    return (
        f"the newest checkpoint ({paths[0]}) is from before the divergence; start a new run "
        f"from its weights with lower {settings}: `mtrl train RECIPE --init-from "
        f"{run.path} --set KEY=VALUE`"
    )


def load_init_state(source: str | Path) -> dict[str, Any]:
    """The checkpoint a new run starts from (``--init-from``): a run directory's newest
    intact checkpoint, or a checkpoint file."""
    path = Path(source)
    if path.is_dir():
        return RunDir.open(path).load_checkpoint()
    if not path.is_file():
        raise ConfigError(
            f"--init-from {str(path)!r} does not exist; give a run directory or a "
            "checkpoints/step_N.pt file"
        )
    return RunDir(path.parent).load_checkpoint(path)


def init_weights(module: Any, source: str | Path | None, key: str) -> None:
    """Load ``module``'s weights from ``source``'s checkpoint entry ``key`` (nothing
    when ``source`` is None); a checkpoint of another kind or shape is a ConfigError."""
    if source is None:
        return
    state = load_init_state(source)
    if key not in state:
        raise ConfigError(
            f"--init-from {str(source)!r} holds no {key!r} weights: it is a checkpoint of "
            "another kind of run"
        )
    try:
        module.load_state_dict(state[key])
    except (RuntimeError, KeyError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"--init-from {str(source)!r}: its networks do not fit this recipe's "
            f"({detail}); use the same env, task count and network settings"
        ) from None
