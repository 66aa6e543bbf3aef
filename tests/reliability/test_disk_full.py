"""A full disk, for real: the run store on a small tmpfs that a filler file fills up.

What must hold: the worker stops training at the first event it cannot record and writes the
run's end (``failed``, "disk full (N MB free in ...)") as soon as space is freed; the runner
says so once and backs off without crashing or judging heartbeats meanwhile; waiting on the
run (``submit --wait``'s loop) never raises, and says "disk full" once, when it first meets
it; metrics recorded before the disk filled are kept. Reading needs no free space: with the
disk full to the last byte, the dashboard (started before the disk filled, or while it is
full) shows one banner and the whole history (in WAL mode every reader must grow the -shm
index, which a full disk refuses: the store is then read without it).
Needs root to mount a tmpfs (this project's CI machine); elsewhere it is skipped, saying so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import streamlit as st

from bn_core.config import TrainConfig
from bn_core.runs.execution.runner import JobRunner
from bn_core.runs.store.errors import StoreError, describe
from bn_core.runs.store.run_store import RunStore
from pages import _runner
from tests.helpers import RecordingBackend, open_page, write_npz
from tests.store_helpers import finished_run

pytestmark = pytest.mark.reliability

RUNS, COMPARE = "pages/runs.py", "pages/compare.py"


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


def fill(folder: Path, *, to_the_last_byte: bool = False) -> Path:
    """Write zeros into ``folder/filler`` until the file system is full (in 64 KB blocks; then
    byte by byte with ``to_the_last_byte``)."""
    filler = folder / "filler"
    blocks = [b"\0" * (64 * 1024)] + ([b"\0"] if to_the_last_byte else [])
    with open(filler, "wb", buffering=0) as f:
        for block in blocks:
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


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.mark.parametrize("started", ["before", "during"])
def test_a_full_disk_leaves_the_history_viewable(tmp_path, monkeypatch, have, started):
    """The dashboard started before the disk filled, or while it is full: /runs and /compare
    show one banner (the runner's "disk full") and every run, no error. Reading used to need
    space (the WAL index, and opening probed a write): the pages showed an error and no runs,
    or raised."""
    with small_tmpfs(tmp_path / "disk", 4) as disk:
        home = disk / "home"
        monkeypatch.setenv("BN_LAB_HOME", str(home))
        monkeypatch.setenv("BN_LAB_STANDBY", "0")  # a standby worker would need the disk
        store = RunStore(home)
        ids = [finished_run(store, seed) for seed in range(3)]
        st.cache_resource.clear()  # the dashboard's own runner, started by app.py
        try:
            if started == "before":
                at = open_page(RUNS)
                assert sorted(at.dataframe[0].value["run"]) == ids and not at.warning
            filler = fill(disk, to_the_last_byte=True)
            assert shutil.disk_usage(disk).free == 0
            runner = _runner._runner_for(str(home.resolve()))  # opened on a full disk: "during"
            wait_for(lambda: runner.problem, 30, "the runner never met the full disk")
            assert runner.problem.startswith("disk full (0 MB free in")
            for _ in range(2):  # a second look: nothing the first one did needed space
                at = open_page(RUNS)
                assert [w.value for w in at.warning] == [runner.problem] and not at.error
                assert sorted(at.dataframe[0].value["run"]) == ids
                at = open_page(COMPARE)
                assert [w.value for w in at.warning] == [runner.problem] and not at.error
                assert len(at.multiselect(key="compare-runs").options) == 3
                assert len(at.table) == 1  # the summary of the three runs
            filler.unlink()
            wait_for(lambda: runner.problem is None, 30, "the runner never saw space again")
            assert not open_page(RUNS).warning
        finally:
            st.cache_resource.clear()  # stops the runner before the tmpfs goes


def test_submit_wait_says_disk_full_once_when_it_meets_it(tmp_path, monkeypatch, capfd):
    """``submit --wait``'s loop (``JobRunner.wait``) on a store whose disk fills while it
    waits: one "disk full" line on stderr, then "works again" once there is space. It used
    to say only "works again": the waiting loop met the full disk first (it looks every
    0.5 s), kept it as the runner's problem without a word, and the scheduling thread, finding
    a problem already kept, took it as said."""
    with small_tmpfs(tmp_path / "disk", 4) as disk:
        home = disk / "home"
        store = RunStore(home)
        runner = JobRunner(store, backend=RecordingBackend(), poll_interval=1.0)
        (run_id,) = runner.submit([TrainConfig()])
        waited: list = []
        waiter = threading.Thread(
            target=lambda: waited.append(runner.wait([run_id], poll=0.1)), daemon=True
        )
        waiter.start()
        try:
            wait_for(lambda: store.get(run_id).status == "starting", 30, "never claimed")
            capfd.readouterr()
            filler = fill(disk, to_the_last_byte=True)
            wait_for(lambda: "disk full" in (runner.problem or ""), 30, "never met")
            time.sleep(2.5)  # a few passes more: still said once
            said = capfd.readouterr().err
            assert said.count("disk full (") == 1, said
            assert said.startswith("bn-lab runner: disk full (") and "works again" not in said
            filler.unlink()
            wait_for(lambda: runner.problem is None, 30, "the runner never saw space again")
            store.transition(run_id, ("starting",), "completed")
            waiter.join(30)
            assert not waiter.is_alive() and waited[0][0].status == "completed"
            said = capfd.readouterr().err
            assert said == "bn-lab runner: the run store works again\n", said
        finally:  # the waiter returns, whatever failed
            with contextlib.suppress(FileNotFoundError):
                (disk / "filler").unlink()
            with contextlib.suppress(StoreError):
                store.transition(run_id, ("starting",), "completed")
            waiter.join(10)
            runner.stop()


def test_wait_says_a_store_problem_it_meets_before_the_runner_does(tmp_path, capfd):
    """The same race, made certain: ``wait``'s look fails (the store cannot be read) before
    the scheduling thread has met anything. The line is said there, once."""
    store = RunStore(tmp_path / "home")
    runner = JobRunner(store, backend=RecordingBackend(), poll_interval=60.0)
    (run_id,) = runner.submit([TrainConfig()])
    message = describe("full", store.path)
    looks = []

    def get(i):
        looks.append(i)
        if len(looks) == 1:
            raise StoreError("full", message, store.path)
        store.transition(run_id, ("queued", "starting"), "completed")  # done at the 2nd look
        return RunStore.get(store, i)

    store.get = get
    try:
        (run,) = runner.wait([run_id], poll=0.1)
    finally:
        runner.stop()
    assert run.status == "completed"
    said = capfd.readouterr().err
    assert said.count(f"bn-lab runner: {message}; retrying every") == 1, said
