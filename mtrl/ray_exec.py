"""`mtrl compare --executor ray`: each (variant, seed) run as a Ray task.

The recipe travels as text (workers need not see the driver's files); each task asks
Ray for the CPUs its recipe's ``threads`` names (1 when unset) and a GPU when its
``device`` is CUDA. Results come back to the driver as the task's return value, so a
cluster without shared storage still yields compare.json; with shared storage (the
run directories on an NFS or similar mount at the same path) finished runs are
reused and interrupted ones resumed exactly as with the local executor.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mtrl.errors import ConfigError
from mtrl.jobs import Job, run_job


def job_resources(recipe: Any) -> dict[str, float]:
    """Ray resources of one run: its torch threads as CPUs, one GPU on CUDA."""
    cpus = float(getattr(recipe, "threads", 0) or 1)
    device = str(getattr(recipe, "device", "cpu"))
    return {"num_cpus": cpus, "num_gpus": 1.0 if device.startswith("cuda") else 0.0}


def _run_remote(recipe_text: str, name: str, job: Job) -> dict[str, Any]:
    """Runs on a Ray worker: write the recipe locally, then train as the local executor."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(recipe_text)
        return run_job(str(path), job)


def run_jobs_on_ray(
    recipe_path: str | Path,
    jobs: Sequence[Job],
    address: str | None,
    log: Callable[[str], None],
) -> dict[tuple[str, int], dict[str, Any]]:
    """Train ``jobs`` as Ray tasks on the cluster at ``address`` (None: start a local
    one on this machine's cores); returns each job's results by (label, seed)."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install 'mtrl-suite[ray]' (or pip install ray)"
        ) from None
    from mtrl.recipes import load_recipe

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        text = Path(recipe_path).read_text()
        pending = {}
        for job in jobs:
            _, cfg = load_recipe(recipe_path, job.overrides)
            res = job_resources(cfg)
            task = ray.remote(num_cpus=res["num_cpus"], num_gpus=res["num_gpus"])(_run_remote)
            pending[task.remote(text, Path(recipe_path).name, job)] = job
        out: dict[tuple[str, int], dict[str, Any]] = {}
        done_count = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            out[job.label, job.seed] = ray.get(ready[0])
            done_count += 1
            log(f"[{done_count}/{len(jobs)}] {job.label} seed {job.seed}: done (ray)")
        return out
    finally:
        if started:
            ray.shutdown()
