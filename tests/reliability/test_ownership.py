"""No run is ever stranded: every ``running`` run has an owner whose death is detected.

Real processes, real signals: a ``study`` killed with SIGKILL leaves its run to be marked
``interrupted`` (by any runner, or by ``bn-lab runs`` with no runner at all), SIGTERM and
SIGHUP stop it cleanly (``cancelled``, report written); a killed ``bn-lab runner`` stops
counting as live, its worker trains on and a new runner adopts it; ``submit`` says whether
anything will start a queued run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bn_core.config import TrainConfig
from bn_core.runs.execution.runner import Backend, JobRunner, reap
from bn_core.runs.store import owner
from bn_core.runs.store.run_store import RunStore
from tests.helpers import write_npz

pytestmark = pytest.mark.reliability
ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "bn_core"]


def _env(tmp_path: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BN_DATA_DIR", "BN_LAB_HOME")}
    env.update(HOME=str(tmp_path), KERAS_HOME=str(tmp_path / "keras"), BN_LAB_HOME=str(home))
    env["BN_LAB_STANDBY"] = "0"
    return env


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# -- owner strings ---------------------------------------------------------------------------


def test_owner_of_this_process_is_alive_and_a_dead_one_is_not(tmp_path):
    assert owner.alive(owner.current()) is True
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    name = owner.owner_of(child.pid)
    child.wait()
    assert owner.alive(name) is False


def test_a_reused_pid_is_not_the_owner_and_other_hosts_are_unknown():
    host, pid, started = owner.current().split("/")
    earlier = f"{started[0]}{int(started[1:]) - 1000}"  # 10 s (Linux ticks) or 10 s (1/100 s)
    assert owner.alive(f"{host}/{pid}/{earlier}") is False  # the same pid, another process
    assert owner.alive(f"not-{host}/{pid}/{started}") is None  # another machine: heartbeats tell
    assert owner.alive(None) is None and owner.alive("garbage") is None


# -- a study killed mid-run --------------------------------------------------------------------


def _start_study(tmp_path: Path):
    data_dir = tmp_path / "data"
    write_npz(data_dir, n_train=6000, n_test=200)
    out = tmp_path / "out"
    env = _env(tmp_path, tmp_path / "cli-home")
    study = subprocess.Popen(
        [*CLI, "study", "figure1", "--quick", "--data-dir", str(data_dir), "--out", str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    home = out / "store"

    def first_run_training():
        if not (home / "runs.sqlite").exists():
            return None
        store = RunStore(home)
        runs = store.list_runs(("running",))
        return runs and store.batch_metrics([runs[0].id]) and runs[0]

    try:
        run = _wait_for(first_run_training, 240, "the study's first run to record a batch")
    except AssertionError:
        study.kill()
        raise AssertionError(study.communicate()[1][-2000:]) from None
    return study, RunStore(home), run


def test_a_study_killed_with_sigkill_leaves_no_stranded_run(tmp_path):
    """A study's runs are queued runs of its store: the one training is owned by its worker
    process (not the study), which goes on, records its end and exits; the runs still
    queued wait for any runner on that store (the dashboard, `bn-lab runner`)."""
    study, store, run = _start_study(tmp_path)
    assert run.pid != study.pid and owner.alive(run.owner) is True  # the worker has it
    assert run.heartbeat is not None
    os.kill(study.pid, signal.SIGKILL)
    study.communicate(timeout=30)

    ended = _wait_for(
        lambda: (r := store.get(run.id)) is not None and not r.active and r, 240, "its end"
    )
    assert ended.status == "completed", ended.error  # its worker finished it
    assert store.batch_metrics([run.id]) and store.model_path(run.id).is_file()
    assert reap(store) == []  # nothing stranded: nobody has to clean up after the study
    waiting = store.list_runs(("queued",))
    assert waiting and all(r.owner is None for r in waiting)

    # The slot is free again: a runner starts the next queued run (a fake backend: no TF here).
    class Starter(Backend):
        started: list[int] = []

        def start(self, run_id, store):
            self.started.append(run_id)
            return os.getpid()

        def alive(self, pid):
            return True

        def terminate(self, pid): ...
        def kill(self, pid): ...

    runner = JobRunner(store, Starter(), max_concurrent=1)
    runner.tick()
    assert Starter.started == [waiting[0].id]  # a runner on the study's store takes them


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_a_study_cleanly(tmp_path, signame):
    study, store, run = _start_study(tmp_path)
    os.kill(study.pid, getattr(signal, signame))
    _, err = study.communicate(timeout=120)
    assert study.returncode == 130, err[-2000:]  # cancelled, as after Ctrl-C
    assert store.get(run.id).status == "cancelled"
    assert not store.list_runs(("queued", "starting", "running"))
    assert (tmp_path / "out" / "report.html").is_file()  # outputs cover what was measured


def test_a_runner_sees_a_dead_study_run_at_its_next_pass(tmp_path):
    """The dashboard's case: the store of a study opened while its process dies."""
    store = RunStore(tmp_path / "home")
    run_id = store.create_run(TrainConfig(), "study-x")
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    now = time.time()
    store.transition(
        run_id,
        ("queued",),
        "running",
        pid=stand_in.pid,
        owner=owner.owner_of(stand_in.pid),
        heartbeat=now,
        started_at=now,
    )
    runner = JobRunner(store, max_concurrent=1)
    runner.tick()
    assert store.get(run_id).status == "running"  # alive: left alone
    stand_in.kill()
    stand_in.wait()
    runner.tick()
    assert store.get(run_id).status == "interrupted"


# -- the runner command ------------------------------------------------------------------------


def test_submit_says_whether_anything_will_start_the_run_and_runner_starts_it(tmp_path):
    data_dir = tmp_path / "data"
    write_npz(data_dir, n_train=400, n_test=50)
    home = tmp_path / "home"
    env = _env(tmp_path, home)
    flags = ["--data-dir", str(data_dir), "--epochs", "1", "--val-size", "50", "--json"]

    queued = subprocess.run(
        [*CLI, "submit", *flags], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert queued.returncode == 0, queued.stderr[-2000:]
    row = json.loads(queued.stdout)
    assert row["status"] == "queued"
    assert "it will start when the dashboard or `bn-lab runner` is running" in row["note"]

    runner = subprocess.Popen(
        [*CLI, "runner"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        store = RunStore(home)
        _wait_for(lambda: store.live_runners(), 60, "the runner to register")
        second = subprocess.run(
            [*CLI, "submit", *flags],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "a runner is running (runner)" in json.loads(second.stdout)["note"]
        ids = [row["id"], json.loads(second.stdout)["id"]]
        _wait_for(
            lambda: all(store.get(i).status == "completed" for i in ids), 300, "both runs to end"
        )
    finally:
        runner.send_signal(signal.SIGTERM)
        out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err[-2000:]
    assert f"run #{ids[0]}" in out and "completed" in out
    assert not RunStore(home).live_runners()  # it unregistered


def test_a_killed_runner_is_not_live_and_its_worker_is_adopted(tmp_path):
    data_dir = tmp_path / "data"
    write_npz(data_dir, n_train=2000, n_test=50)
    home = tmp_path / "home"
    env = _env(tmp_path, home)
    store = RunStore(home)
    config = TrainConfig(data_dir=str(data_dir), epochs=30, val_size=50, variant="lenet_bn1")
    (run_id,) = JobRunner(store).submit([config])

    first = subprocess.Popen([*CLI, "runner"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: store.batch_metrics([run_id]), 240, "the run to record a batch")
    finally:
        first.kill()
        first.wait()
    assert not store.live_runners()  # its row is left behind, but its process is dead
    worker = store.get(run_id)
    assert worker.status == "running" and psutil.pid_exists(worker.pid)

    second = JobRunner(store, max_concurrent=1)  # e.g. the dashboard, started later
    try:
        second.tick()
        assert store.get(run_id).status == "running"  # adopted, not interrupted
        second.cancel(run_id)
        second.start()
        _wait_for(lambda: not store.get(run_id).active, 120, "the adopted run to stop")
    finally:
        second.stop()
    assert store.get(run_id).status == "cancelled"


def test_an_idle_runner_removes_partial_files_of_killed_writers(tmp_path):
    """A kill during a model save leaves models/.run-N.keras.PID.X.tmp.keras: the runner's
    idle pass removes it once its writer is gone (and it is a minute old)."""
    store = RunStore(tmp_path / "home")
    dead_writer = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_writer.wait()
    models = store.home / "models"
    models.mkdir()
    partial = models / f".run-1.keras.{dead_writer.pid}.x1y2.tmp.keras"
    partial.write_bytes(b"half a model")
    live = models / f".run-2.keras.{os.getpid()}.x1y2.tmp.keras"
    live.write_bytes(b"being written")
    minute_ago = time.time() - 120
    for path in (partial, live):
        os.utime(path, (minute_ago, minute_ago))

    class Idle(Backend):  # no runs: the runner's idle branch
        def start(self, run_id, store): ...
        def alive(self, pid):
            return True

        def terminate(self, pid): ...
        def kill(self, pid): ...

    JobRunner(store, Idle(), max_concurrent=1).tick()
    assert not partial.exists() and live.exists()
