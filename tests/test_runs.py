from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mtrl.config import read_toml
from mtrl.envs.rollout_run import RolloutConfig
from mtrl.errors import RunDirError
from mtrl.runs import RunDir
from mtrl.seeding import derive_seeds, seed_everything


def test_run_dir_layout_summary_and_no_overwrite(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", RolloutConfig(seed=3))
    assert read_toml(run.config_path)["seed"] == 3
    assert run.checkpoints.is_dir() and run.plots.is_dir()
    run.write_summary(seed=3, results={"x": 1.5})
    doc = json.loads(run.summary_path.read_text())
    assert doc["seed"] == 3 and doc["results"] == {"x": 1.5}
    for pkg in ("torch", "gymnasium", "mujoco", "metaworld"):
        assert doc["versions"][pkg] not in ("", "absent")
    with pytest.raises(RunDirError, match="already holds a run"):
        RunDir.create(tmp_path / "run", RolloutConfig())
    assert read_toml(run.config_path)["seed"] == 3  # untouched


def test_metrics_columns_grow_without_losing_rows(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, RolloutConfig())
    run.log_metrics({"step": 1, "loss": 0.5})
    run.log_metrics({"step": 2, "loss": 0.25, "success": 1.0})
    run.log_metrics({"step": 3, "loss": 0.125})
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["success"] == "" and rows[1]["success"] == "1.0"


def test_checkpoints_round_trip_and_missing_checkpoint_is_clear(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, RolloutConfig())
    with pytest.raises(RunDirError, match="no checkpoint"):
        run.load_checkpoint()
    run.save_checkpoint({"w": torch.ones(2)}, step=5)
    run.save_checkpoint({"w": torch.zeros(2)}, step=12)
    assert run.latest_checkpoint().name == "step_12.pt"
    assert torch.equal(run.load_checkpoint()["w"], torch.zeros(2))
    with pytest.raises(RunDirError, match="not a run directory"):
        RunDir.open(tmp_path / "elsewhere")
    assert RunDir.open(tmp_path).path == tmp_path


def test_seed_everything_reproduces_numbers() -> None:
    a = seed_everything(5)
    x = (a.random(), torch.rand(1).item())
    b = seed_everything(5)
    assert (b.random(), torch.rand(1).item()) == x
    assert derive_seeds(1, 3) == derive_seeds(1, 3) and len(set(derive_seeds(1, 3))) == 3
    with pytest.raises(ValueError, match="non-negative int"):
        seed_everything(-1)


def test_corrupt_newest_checkpoint_falls_back_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = RunDir.create(tmp_path / "run", RolloutConfig())
    run.save_checkpoint({"w": torch.ones(2)}, step=5)
    run.save_checkpoint({"w": torch.zeros(2)}, step=9)
    (run.checkpoints / "step_9.pt").write_bytes(b"garbage")
    (run.checkpoints / "step_12.pt").write_bytes((run.checkpoints / "step_5.pt").read_bytes()[:40])
    assert torch.equal(run.load_checkpoint()["w"], torch.ones(2))
    err = capsys.readouterr().err
    assert "step_12.pt" in err and "step_9.pt" in err and "using step_5.pt" in err
    with pytest.raises(RunDirError, match="corrupt"):
        run.load_checkpoint(run.checkpoints / "step_9.pt")
    (run.checkpoints / "step_5.pt").write_bytes(b"")
    with pytest.raises(RunDirError, match="every checkpoint"):
        run.load_checkpoint()


def test_flipped_bytes_inside_the_weights_are_caught_by_the_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """64 bytes flipped in the middle of a checkpoint still unpickle (they land in the
    weights): the SHA-256 written beside it names the file as corrupt, and the
    previous checkpoint is used."""
    run = RunDir.create(tmp_path / "run", RolloutConfig())
    run.save_checkpoint({"w": torch.ones(4096)}, step=5)
    run.save_checkpoint({"w": torch.zeros(4096)}, step=9)
    path = run.checkpoints / "step_9.pt"
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    path.write_bytes(bytes(data))
    flipped = torch.load(path, weights_only=False)["w"]  # torch alone does not notice
    assert flipped.shape == (4096,) and not torch.equal(flipped, torch.zeros(4096))
    assert torch.equal(run.load_checkpoint()["w"], torch.ones(4096))
    err = capsys.readouterr().err
    assert "step_9.pt' is corrupt: its bytes do not match step_9.pt.sha256" in err
    assert "using step_5.pt" in err


def test_only_the_newest_checkpoints_are_kept(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", RolloutConfig())
    for step in (1, 2, 3, 4):
        run.save_checkpoint({"step": step}, step=step, keep=2)
    assert [p.name for p in run.checkpoint_paths()] == ["step_4.pt", "step_3.pt"]
    assert not list(run.checkpoints.glob("*.tmp"))
    assert sorted(p.name for p in run.checkpoints.glob("*.sha256")) == [
        "step_3.pt.sha256",
        "step_4.pt.sha256",
    ]


def test_one_writer_per_run_directory(tmp_path: Path) -> None:
    """The lock is an OS lock: a second process is refused naming the holder's pid."""
    run = RunDir.create(tmp_path / "run", RolloutConfig())
    run.acquire()
    code = (
        "import sys\n"
        "from mtrl.runs import RunDir\n"
        "from mtrl.errors import RunDirError\n"
        "try:\n"
        f"    RunDir.open({str(run.path)!r}).acquire()\n"
        "except RunDirError as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 3 and f"pid {os.getpid()}" in proc.stdout
    run.release()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unusable_run_paths_are_refused_before_writing(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        RunDir.create(afile, RolloutConfig())
    leftovers = tmp_path / "old"
    (leftovers / "checkpoints").mkdir(parents=True)
    (leftovers / "checkpoints" / "step_5.pt").write_bytes(b"x")
    with pytest.raises(RunDirError, match="holds no run"):
        RunDir.create(leftovers, RolloutConfig())
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "ro"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(RunDirError, match="cannot write"):
                RunDir.create(locked / "run", RolloutConfig())
        finally:
            locked.chmod(0o700)


def test_summary_json_is_strict(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", RolloutConfig())
    run.write_summary(seed=0, results={"success": float("nan"), "r": [1.0, float("inf")]})
    doc = json.loads(run.summary_path.read_text(), parse_constant=_refuse)
    assert doc["results"] == {"success": None, "r": [1.0, None]}


def _refuse(name: str) -> None:
    raise ValueError(f"non-standard JSON constant {name}")


def test_metrics_roll_back_to_a_checkpoint(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", RolloutConfig())
    for step in range(5):
        run.log_metrics({"step": step})
    assert run.metric_rows() == 5
    assert run.truncate_metrics(3) == 2
    assert [r["step"] for r in run.read_metrics()] == ["0", "1", "2"]


def test_ctrl_c_is_deferred_to_the_loops_next_consistent_point() -> None:
    import signal

    from mtrl.stopping import InterruptGuard

    # a known handler first: another test in this worker process may have left one
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with InterruptGuard() as guard:
            os.kill(os.getpid(), signal.SIGINT)  # handled at once: only a flag
            os.kill(os.getpid(), signal.SIGINT)  # a second press (a checkpoint being written)
            assert guard.requested == 2
            with pytest.raises(KeyboardInterrupt):
                guard.check()
            with pytest.raises(KeyboardInterrupt):  # the third press aborts at once
                os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, outer)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_are_deferred_as_ctrl_c_is(sig: signal.Signals) -> None:
    from mtrl.stopping import Interrupted, InterruptGuard

    before = signal.getsignal(sig)
    with InterruptGuard() as guard:
        os.kill(os.getpid(), sig)  # only a flag: the process lives on
        os.kill(os.getpid(), signal.SIGINT)  # a later Ctrl-C keeps the first signal's name
        with pytest.raises(Interrupted) as stopped:
            guard.check()
    assert stopped.value.signum == sig and stopped.value.name == sig.name
    # a sweep's worker sends it back to the parent pickled
    again = pickle.loads(pickle.dumps(stopped.value))
    assert isinstance(again, Interrupted) and again.signum == sig and str(again) == sig.name
    assert signal.getsignal(sig) == before  # restored


def test_resuming_without_a_checkpoint_starts_over_from_empty_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mtrl.training import resume_state

    run = RunDir.create(tmp_path / "run", RolloutConfig())
    run.log_metrics({"step": 1})
    (run.checkpoints / "step_2.pt.tmp").write_bytes(b"partial")
    assert resume_state(run, resume=True) is None
    assert run.metric_rows() == 0 and "starting it over" in capsys.readouterr().err
    assert not list(run.checkpoints.glob("*.tmp"))
    run.log_metrics({"step": 1})
    run.save_checkpoint({"w": 1}, step=1)
    run.log_metrics({"step": 2})  # after the checkpoint: rolled back on resume
    state = resume_state(run, resume=True)
    assert state is not None and state["w"] == 1 and run.metric_rows() == 1


def test_a_full_disk_is_told_apart_also_under_a_library_error() -> None:
    """What `mtrl train` and `mtrl compare` turn into one 'free space' line: ENOSPC,
    also where a library raised its own error over it (torch.save does)."""
    from mtrl.errors import disk_full

    try:
        with open("/dev/full", "w") as fh:  # a device that is always full
            fh.write("x" * 100_000)
    except OSError as exc:
        full = exc
    assert disk_full(full)
    try:
        try:
            raise full
        except OSError as inner:
            raise RuntimeError("[enforce fail at inline_container.cc:672] write failed") from inner
    except RuntimeError as wrapped:
        assert disk_full(wrapped)
    assert not disk_full(RuntimeError("unexpected pos 704 vs 598"))
    assert not disk_full(OSError(13, "Permission denied"))
