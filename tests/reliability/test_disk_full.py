"""A full disk, for real: the run store on a small tmpfs that a filler file fills up.

What must hold: the worker stops training at the first event it cannot record and writes the
run's end (``failed``, "disk full (N MB free in ...)") as soon as space is freed; the runner
says so once and backs off without crashing or judging heartbeats meanwhile; waiting on the
run (``submit --wait``'s loop) never raises; metrics recorded before the disk filled are kept.
Needs root to mount a tmpfs (this project's CI machine); elsewhere it is skipped, saying so.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from bn_core.config import TrainConfig
from bn_core.runs.execution.runner import JobRunner
from bn_core.runs.store.run_store import RunStore
from tests.helpers import write_npz

pytestmark = pytest.mark.reliability


@contextlib.contextmanager
def small_tmpfs(folder: Path, megabytes: int):
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (a full disk cannot be simulated here)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write zeros into ``folder/filler`` until the file system is full."""
    filler = folder / "filler"
    block = b"\0" * (64 * 1024)
    with open(filler, "wb", buffering=0) as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(block)
    return filler


def test_a_full_disk_fails_the_run_with_the_reason_once_space_is_freed(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    write_npz(data_dir, n_train=3000, n_test=100)
    with small_tmpfs(tmp_path / "disk", 24) as home:
        monkeypatch.setenv("BN_LAB_HOME", str(home))
        monkeypatch.setenv("BN_LAB_XLA_CACHE", "0")  # nothing else on the small disk
        monkeypatch.setenv("BN_LAB_STANDBY", "0")
        store = RunStore(home)
        runner = JobRunner(store, max_concurrent=1, stale_after=5, poll_interval=0.2)
        config = TrainConfig(data_dir=str(data_dir), epochs=200, val_size=100, variant="lenet")
        (run_id,) = runner.submit([config])
        waited: list = []
        waiter = threading.Thread(target=lambda: waited.append(runner.wait([run_id], poll=0.2)))
        waiter.start()  # submit --wait's loop: it must survive the full disk
        try:
            deadline = time.monotonic() + 240
            while len(store.epoch_metrics([run_id])) < 1:
                assert time.monotonic() < deadline, "the run recorded no epoch"
                time.sleep(0.2)
            filler = fill(home)
            deadline = time.monotonic() + 60
            while runner.problem is None or "disk full" not in runner.problem:
                assert time.monotonic() < deadline, f"the runner never noticed: {runner.problem}"
                time.sleep(0.2)
            time.sleep(8)  # longer than stale_after: the run must not be called interrupted
            assert waiter.is_alive()  # still waiting, not crashed
            filler.unlink()  # space again
            waiter.join(120)
            assert not waiter.is_alive(), "the run never ended after space was freed"
            deadline = time.monotonic() + 30  # the runner's next pass after its back-off
            while runner.problem is not None:
                assert time.monotonic() < deadline, f"the runner still says: {runner.problem}"
                time.sleep(0.2)
        finally:
            runner.stop()
            for run in store.list_runs(("starting", "running")):
                if run.pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(run.pid, 9)
        (run,) = waited[0]
        assert run.status == "failed", (run.status, run.error)
        assert run.error.startswith("disk full (") and "MB free in" in run.error, run.error
        assert store.epoch_metrics([run_id])  # what was recorded before is kept
