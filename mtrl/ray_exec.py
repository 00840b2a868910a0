"""`mtrl compare --executor ray`: each (variant, seed) run as a Ray task.

The recipe travels as its contents (workers need not see the driver's files); each task asks
Ray for the CPUs its recipe's ``threads`` names (1 when unset) and a GPU when its
``device`` is CUDA. Results come back to the driver as the task's return value, so a
cluster without shared storage still yields compare.json; with shared storage (the
run directories on an NFS or similar mount at the same path) finished runs are
reused and interrupted ones resumed exactly as with the local executor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mtrl.errors import ConfigError
from mtrl.jobs import Job, RecipeSource, run_job
from mtrl.stopping import Interrupted, ignoring_stop_signals, signals_as_interrupts
from mtrl.sweep_progress import SweepProgress


def job_resources(recipe: Any) -> dict[str, float]:
    """Ray resources of one run: its torch threads as CPUs, one GPU on CUDA."""
    cpus = float(getattr(recipe, "threads", 0) or 1)
    device = str(getattr(recipe, "device", "cpu"))
    return {"num_cpus": cpus, "num_gpus": 1.0 if device.startswith("cuda") else 0.0}


def _run_remote(recipe: RecipeSource, job: Job) -> tuple[dict[str, Any], float] | None:
    """Runs on a Ray worker: trains as the local executor. None: the run was stopped
    (``ray.cancel`` raises Ctrl-C in the task, whose guard checkpoints the run)."""
    try:
        return run_job(recipe, job)
    except KeyboardInterrupt:
        return None


def run_jobs_on_ray(
    recipe: RecipeSource, jobs: Sequence[Job], address: str | None, progress: SweepProgress
) -> dict[tuple[str, int], dict[str, Any]]:
    """Train ``jobs`` as Ray tasks on the cluster at ``address`` (None: start a local
    one on this machine's cores); returns each job's results by (label, seed). Stopped,
    queued tasks are cancelled and running ones checkpoint before the interrupt goes on."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install 'mtrl-suite[ray]' (or pip install ray)"
        ) from None

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        pending = _submit(ray, recipe, jobs)
        progress.use_slots(_slots(ray, recipe, jobs))
        received: list[int] = []
        try:
            with signals_as_interrupts(ctrl_c=True) as received:  # not ray.init's handler
                return _gather(ray, pending, progress)
        except KeyboardInterrupt as exc:
            with ignoring_stop_signals():  # while the runs save
                _stop(ray, pending, progress)
            if received and not isinstance(exc, Interrupted):  # Ray re-raised it plain
                raise Interrupted(received[0]) from None
            raise
    finally:
        if started:
            ray.shutdown()


def _submit(ray: Any, recipe: RecipeSource, jobs: Sequence[Job]) -> dict[Any, Job]:
    pending = {}
    for job in jobs:
        _, cfg = recipe.load(job.overrides)
        res = job_resources(cfg)
        task = ray.remote(num_cpus=res["num_cpus"], num_gpus=res["num_gpus"])(_run_remote)
        pending[task.remote(recipe, job)] = job
    return pending


def _slots(ray: Any, recipe: RecipeSource, jobs: Sequence[Job]) -> int:
    """How many of ``jobs`` the cluster runs at once, by the first job's resources."""
    if not jobs:
        return 1
    need = job_resources(recipe.load(jobs[0].overrides)[1])
    have = ray.cluster_resources()
    names = {"num_cpus": "CPU", "num_gpus": "GPU"}  # a task's request: the cluster's name
    fits = [have.get(names[k], 0.0) / v for k, v in need.items() if v]
    return max(1, int(min(fits, default=1)))


def _gather(
    ray: Any, pending: dict[Any, Job], progress: SweepProgress
) -> dict[tuple[str, int], dict[str, Any]]:
    """Each task's results as it finishes (``pending`` shrinks to the unfinished)."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=5.0)
        for ref in ready:
            job = pending.pop(ref)
            value = ray.get(ref)
            if value is None:  # stopped on the cluster (its node shut down, say)
                raise KeyboardInterrupt
            out[job.label, job.seed] = value[0]
            progress.finished(job, *value)
        progress.tick(running=len(pending))
    return out


def _stop(ray: Any, pending: dict[Any, Job], progress: SweepProgress) -> None:
    """Cancel every unfinished task (a running one checkpoints its run) and report."""
    for ref in pending:
        ray.cancel(ref)
    progress.log("interrupted: queued runs cancelled; the running ones checkpoint")
    interrupted = []
    for ref, job in pending.items():
        try:
            value = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            continue  # never started
        if value is None:
            interrupted.append(job)
        else:
            progress.finished(job, *value)
    progress.stopped(interrupted)
