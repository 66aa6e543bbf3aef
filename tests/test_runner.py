"""Tests for bn_core.runs.execution.runner and its local backend
(bn_core.runs.execution.backends.local): the queue,
real worker processes, cancellation, dead runs, which processes count as workers.

Most tests start real ``python -m bn_core.runs.execution.worker`` processes on a tiny synthetic
MNIST file (a worker needs several seconds to import TensorFlow and compile). Tests that need a
worker that misbehaves (ignores SIGTERM, hangs) use plain sleeping processes instead. Every
process a test starts is SIGKILLed at teardown, whatever the outcome.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from bn_core.config import ConfigError, TrainConfig
from bn_core.runs.execution import runner as jobs
from bn_core.runs.execution.backends.local import worker_process
from bn_core.runs.execution.runner import (
    Backend,
    JobRunner,
    LocalProcessBackend,
    default_concurrency,
)
from bn_core.runs.execution.worker import record_event, run_worker, use_xla_cache, xla_cache_folder
from bn_core.runs.store.run_store import RunRecord, RunStore
from bn_core.settings import SettingError
from tests.conftest import assert_runs_without_tensorflow
from tests.runner_helpers import DEADLINE, long_config, quick_config, wait_for, write_mnist

# -- helpers ------------------------------------------------------------------------------------


def log_tail(store: RunStore, run_id: int, lines: int = 30) -> str:
    path = store.home / "logs" / f"run-{run_id}.log"
    if not path.exists():
        return f"(no log {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def describer(store: RunStore, run_id: int) -> Callable[[], str]:
    def describe() -> str:
        run = store.get(run_id)
        n = len(store.batch_metrics([run_id]))
        return f"run {run_id}: {run}\nbatch rows: {n}\nworker log:\n{log_tail(store, run_id)}"

    return describe


def wait_finished(store: RunStore, run_id: int, what: str, **kwargs):
    """Wait until the run has left the active statuses; return its record."""

    def finished():
        run = store.get(run_id)
        return run if run is not None and not run.active else None

    kwargs.setdefault("describe", describer(store, run_id))
    return wait_for(finished, what, **kwargs)


def is_gone(pid: int) -> bool:
    """The process has exited (a zombie awaiting its parent's wait counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def batch_event(step: int, steps_per_epoch: int = 2) -> dict:
    epoch, index = divmod(step - 1, steps_per_epoch)
    return {
        "step": step,
        "epoch": epoch + 1,
        "batch": index + 1,
        "loss": 2.0,
        "accuracy": 0.1,
        "epoch_progress": epoch + (index + 1) / steps_per_epoch,
    }


def epoch_event(epoch: int, steps_per_epoch: int = 2) -> dict:
    return {
        "epoch": epoch,
        "step": epoch * steps_per_epoch,
        "loss": 2.0,
        "accuracy": 0.1,
        "val_loss": 2.1,
        "val_accuracy": 0.1,
        "seconds": 1.0,
        "images_per_second": 64.0,
    }


class SleeperBackend(Backend):
    """A backend whose "workers" are sleeping processes that never touch the store: the test
    plays the worker's part (status, heartbeats, metrics) itself. ``ignore_sigterm`` makes them
    deaf to SIGTERM, like a worker stuck in native code."""

    def __init__(self, ignore_sigterm: bool = False):
        self.ignore_sigterm = ignore_sigterm
        self.procs: dict[int, subprocess.Popen] = {}
        self.started: list[int] = []  # run ids, in start order
        self.signals: list[tuple[float, int, int]] = []  # (time, pid, signal)

    def start(self, run_id: int, store: RunStore) -> int:
        code = "import signal, time\n"
        if self.ignore_sigterm:
            code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        code += "print('ready', flush=True)\ntime.sleep(600)\n"
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.procs[proc.pid] = proc
        assert proc.stdout.readline().strip() == "ready"  # the SIGTERM handler is in place
        self.started.append(run_id)
        return proc.pid

    def alive(self, pid: int) -> bool:
        proc = self.procs.get(pid)
        return proc is not None and proc.poll() is None

    def terminate(self, pid: int) -> None:
        self.signals.append((time.time(), pid, signal.SIGTERM))
        os.kill(pid, signal.SIGTERM)

    def kill(self, pid: int) -> None:
        self.signals.append((time.time(), pid, signal.SIGKILL))
        os.kill(pid, signal.SIGKILL)


class Reaper:
    """Remembers runners, backends and processes; kills and reaps all of them at teardown."""

    def __init__(self, store: RunStore):
        self.store = store
        self.runners: list[JobRunner] = []
        self.popens: list[subprocess.Popen] = []

    def runner(self, backend=None, **kwargs) -> JobRunner:
        kwargs.setdefault("poll_interval", 0.2)
        runner = JobRunner(self.store, backend, **kwargs)
        self.runners.append(runner)
        return runner

    def popen(self, args: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        self.popens.append(proc)
        return proc

    def cleanup(self) -> None:
        for runner in self.runners:
            runner.stop()
        children = list(self.popens)
        for runner in self.runners:
            children += list(getattr(runner.backend, "_children", {}).values())
            children += list(getattr(runner.backend, "procs", {}).values())
        ours = {p.pid for p in children}
        for run in self.store.list_runs():
            # Only pids that are ours: a child we know, or a worker of this very store.
            if run.pid and (run.pid in ours or self._is_worker_of_store(run.pid)):
                try:
                    os.kill(run.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in children:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass

    def _is_worker_of_store(self, pid: int) -> bool:
        try:
            process = psutil.Process(pid)
            cmdline, environ = process.cmdline(), process.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False
        home = str(self.store.home.resolve())
        return "bn_core.runs.execution.worker" in cmdline and environ.get("BN_LAB_HOME") == home


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "home")


@pytest.fixture
def reaper(store):
    reaper = Reaper(store)
    yield reaper
    reaper.cleanup()


@pytest.fixture
def mnist_dir(tmp_path) -> Path:
    return write_mnist(tmp_path / "data")


# -- the queue ----------------------------------------------------------------------------------


def test_queue_order_and_concurrency_limit(store, reaper, mnist_dir):
    runner = reaper.runner(max_concurrent=1)
    ids = runner.submit([quick_config(mnist_dir, seed=s) for s in (1, 2, 3)], group_id="trio")
    assert ids == sorted(ids) and len(ids) == 3
    assert [r.status for r in store.list_runs()] == ["queued"] * 3
    assert {r.group_id for r in store.list_runs()} == {"trio"}

    runner.start()
    snapshots: list[dict[int, str]] = []

    def all_done() -> bool:
        snapshot = {r.id: r.status for r in store.list_runs()}
        snapshots.append(snapshot)
        return not any(s in ("queued", "starting", "running") for s in snapshot.values())

    wait_for(
        all_done,
        "three quick runs to finish",
        timeout=3 * DEADLINE,
        interval=0.05,
        describe=lambda: "\n".join(describer(store, i)() for i in ids),
    )

    busy = [sum(s in ("starting", "running") for s in snap.values()) for snap in snapshots]
    assert max(busy) <= 1, f"more than one run active at once: {snapshots[busy.index(max(busy))]}"
    assert max(busy) == 1  # the observer did see runs in progress

    runs = [store.get(i) for i in ids]
    for run in runs:
        assert run.status == "completed", describer(store, run.id)()
        assert run.error is None and run.test_accuracy is not None
        assert run.images_per_second is not None and run.images_per_second > 0
        assert run.backend is None and run.backend_name == "local"
        assert run.steps_per_epoch == 2 and run.total_steps == 2
        assert run.data_source and "mnist.npz" in run.data_source
        epochs = store.epoch_metrics([run.id])
        assert [e["epoch"] for e in epochs] == [1]
        assert epochs[0]["val_accuracy"] is not None
        assert len(store.batch_metrics([run.id])) >= 1
        assert run.stage == "saving the model"  # the last stage a completed run goes through
    # Started in queue order, each only after the previous one had finished.
    started = [r.started_at for r in runs]
    assert started == sorted(started) and len(set(started)) == 3
    for before, after in zip(runs, runs[1:], strict=False):
        assert before.finished_at <= after.started_at
    assert len({r.pid for r in runs}) == 3
    # Queue order as observed: a later run is never active while an earlier one is queued.
    for snap in snapshots:
        for a, b in zip(ids, ids[1:], strict=False):
            assert not (snap[a] == "queued" and snap[b] != "queued"), snap


def test_submit_validates_every_config_first(store, reaper, mnist_dir):
    backend = SleeperBackend()
    runner = reaper.runner(backend)
    good = quick_config(mnist_dir)
    with pytest.raises(ConfigError, match="epochs"):
        runner.submit([good, TrainConfig(data_dir=str(mnist_dir), epochs=0), good])
    assert store.list_runs() == []
    runner.tick()
    assert backend.started == []
    # The same list without the bad config is queued whole, in one group.
    ids = runner.submit([good, good])
    runs = store.list_runs()
    assert [r.id for r in runs] == ids and len({r.group_id for r in runs}) == 1


def test_default_concurrency_honours_env(store, monkeypatch):
    monkeypatch.setattr(jobs.os, "cpu_count", lambda: 8)
    monkeypatch.setenv("BN_LAB_MAX_CONCURRENT", "3")
    assert default_concurrency() == 3
    assert JobRunner(store).max_concurrent == 3
    assert JobRunner(store, max_concurrent=2).max_concurrent == 2  # an explicit limit wins
    monkeypatch.setenv("BN_LAB_MAX_CONCURRENT", "1")
    assert default_concurrency() == 1
    for bad in ("0", "-2", "two", " ", "1025"):  # refused in one line (bn_core.settings)
        monkeypatch.setenv("BN_LAB_MAX_CONCURRENT", bad)
        with pytest.raises(SettingError, match=f"^BN_LAB_MAX_CONCURRENT={bad!r} is not"):
            default_concurrency()
        with pytest.raises(SettingError):
            JobRunner(store)
    monkeypatch.setenv("BN_LAB_MAX_CONCURRENT", "")  # empty is unset
    assert default_concurrency() == 4  # cores // 2
    monkeypatch.delenv("BN_LAB_MAX_CONCURRENT")
    assert default_concurrency() == 4
    for cores, expected in ((2, 1), (1, 1), (None, 1), (16, 8)):
        monkeypatch.setattr(jobs.os, "cpu_count", lambda cores=cores: cores)
        assert default_concurrency() == expected, cores


def test_default_concurrency_refuses_unicode_digits(monkeypatch):
    monkeypatch.setattr(jobs.os, "cpu_count", lambda: 8)
    monkeypatch.setenv("BN_LAB_MAX_CONCURRENT", "\u00b2")  # superscript two: isdigit() is True
    with pytest.raises(SettingError):
        default_concurrency()


class _CountThenClaimStore(RunStore):
    """A store whose queued-run listing waits for the other runner's, so both runners count the
    active runs before either claims one: the interleaving two schedulers can hit for real."""

    barrier = None

    def list_runs(self, statuses=None, group_id=None):
        if statuses == ("queued",) and self.barrier is not None:
            self.barrier.wait(timeout=30)
        return super().list_runs(statuses, group_id)


def test_two_runners_on_one_store_respect_the_limit(store, reaper, mnist_dir):
    ids = JobRunner(store).submit([quick_config(mnist_dir)] * 3)
    barrier = threading.Barrier(2)
    backends = [SleeperBackend(), SleeperBackend()]
    runners = []
    for backend in backends:
        view = _CountThenClaimStore(store.home)
        view.barrier = barrier
        runners.append(reaper.runner(backend, max_concurrent=1))
        runners[-1].store = view
    threads = [threading.Thread(target=r.tick) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    active = store.list_runs(("starting", "running"))
    assert len(active) <= 1, f"{len(active)} runs started with max_concurrent=1: {ids}"


# -- cancellation -------------------------------------------------------------------------------


def test_cooperative_cancel_of_a_running_worker(store, reaper, mnist_dir):
    # A long grace: the runner never signals, so only the worker's own polling can stop it.
    runner = reaper.runner(max_concurrent=1, cancel_grace=300)
    (run_id,) = runner.submit([long_config(mnist_dir)])
    runner.start()
    describe = describer(store, run_id)
    wait_for(lambda: store.batch_metrics([run_id]), "first batch metrics", describe=describe)
    before = store.batch_metrics([run_id])
    pid = store.get(run_id).pid
    assert store.get(run_id).status == "running"

    runner.cancel(run_id)
    assert store.cancel_requested(run_id)
    run = wait_finished(store, run_id, "the run to stop", timeout=60, describe=describe)
    assert run.status == "cancelled", describe()
    assert run.error and run.error.startswith("cancelled"), run.error  # the worker's own words
    assert run.finished_at is not None and run.test_accuracy is None
    after = store.batch_metrics([run_id])
    assert all(row in after for row in before)  # nothing recorded before was lost
    wait_for(lambda: is_gone(pid), f"worker {pid} to exit", timeout=60, describe=describe)
    assert "cancelled" in log_tail(store, run_id)


def test_forced_cancel_escalates_sigterm_then_sigkill(store, reaper, mnist_dir):
    backend = SleeperBackend(ignore_sigterm=True)
    runner = reaper.runner(backend, max_concurrent=1, cancel_grace=0.5, stale_after=60)
    (run_id,) = runner.submit([long_config(mnist_dir)])
    runner.tick()
    assert backend.started == [run_id]
    run = store.get(run_id)
    assert run.status == "starting" and run.pid in backend.procs
    pid, proc = run.pid, backend.procs[run.pid]

    # The test plays the worker: it claims the run, records metrics, sends heartbeats.
    assert store.transition(run_id, ("starting",), "running", started_at=time.time())
    for step in (1, 2):
        store.add_batch(run_id, batch_event(step))
    store.add_epoch(run_id, epoch_event(1))
    runner.tick()
    assert store.get(run_id).status == "running" and backend.signals == []

    cancelled_at = time.time()
    runner.cancel(run_id)
    run = wait_finished(
        store,
        run_id,
        "the runner to end the run",
        timeout=60,
        interval=0.05,
        tick=lambda: (store.update(run_id, heartbeat=time.time()), runner.tick()),
        describe=lambda: f"{store.get(run_id)}\nsignals: {backend.signals}",
    )
    assert run.status == "cancelled"
    assert "worker process exited" in run.error
    assert proc.poll() == -signal.SIGKILL  # it ignored SIGTERM, so SIGKILL it was

    sent = [sig for _, _, sig in backend.signals]
    assert sent[0] == signal.SIGTERM and sent[-1] == signal.SIGKILL, sent
    assert sent == sorted(sent, key=lambda s: s == signal.SIGKILL)  # every TERM before any KILL
    first_term = next(t for t, _, s in backend.signals if s == signal.SIGTERM)
    first_kill = next(t for t, _, s in backend.signals if s == signal.SIGKILL)
    assert first_term - cancelled_at >= 0.5  # not before cancel_grace
    assert first_kill - cancelled_at >= 1.0  # not before twice cancel_grace
    assert {p for _, p, _ in backend.signals} == {pid}
    assert len(store.batch_metrics([run_id])) == 2 and len(store.epoch_metrics([run_id])) == 1


def test_cancel_of_queued_run_is_immediate_and_it_never_starts(store, reaper, mnist_dir):
    backend = SleeperBackend()
    runner = reaper.runner(backend, max_concurrent=1)
    first, second = runner.submit([quick_config(mnist_dir), quick_config(mnist_dir)])

    runner.cancel(second)
    run = store.get(second)
    assert run.status == "cancelled" and run.finished_at is not None
    assert run.pid is None and run.started_at is None

    runner.tick()
    assert backend.started == [first]
    # The first run ends; the slot is free again, yet the cancelled run stays put.
    store.transition(first, ("starting",), "completed", finished_at=time.time())
    for _ in range(3):
        runner.tick()
    assert backend.started == [first]
    assert store.get(second).status == "cancelled"
    runner.cancel(second)  # cancelling again changes nothing
    assert store.get(second).status == "cancelled"
    # A worker started for it anyway (a stale UI, a race) refuses it.
    assert run_worker(second, store) == "skipped"
    assert store.get(second).status == "cancelled" and store.get(second).pid is None


# -- dead and stuck workers ---------------------------------------------------------------------


def test_killed_worker_is_interrupted_and_keeps_its_metrics(store, reaper, mnist_dir):
    runner = reaper.runner(max_concurrent=1, stale_after=60)
    (run_id,) = runner.submit([long_config(mnist_dir)])
    runner.start()
    describe = describer(store, run_id)
    wait_for(
        lambda: len(store.epoch_metrics([run_id])) >= 1, "first epoch metrics", describe=describe
    )
    pid = store.get(run_id).pid
    batches, epochs = store.batch_metrics([run_id]), store.epoch_metrics([run_id])

    os.kill(pid, signal.SIGKILL)
    run = wait_finished(
        store, run_id, "the runner to notice the dead worker", timeout=60, describe=describe
    )
    assert run.status == "interrupted"
    assert "worker" in run.error and "exited" in run.error, run.error
    assert run.finished_at is not None
    after_batches, after_epochs = store.batch_metrics([run_id]), store.epoch_metrics([run_id])
    assert all(row in after_batches for row in batches)
    assert all(row in after_epochs for row in epochs)
    assert len(after_epochs) >= 1


def lookalike(run_id: int, code: str = "import time; time.sleep(600)") -> list[str]:
    """A command line holding ``-m bn_core.runs.execution.worker RUN_ID``, as a real
    worker's does, that
    runs ``code`` instead: the runner only ever signals such processes (a stored pid may belong
    to someone else after a restart)."""
    return [sys.executable, "-c", code, "-m", "bn_core.runs.execution.worker", str(run_id)]


def test_stale_heartbeat_interrupts_and_kills_the_process(store, reaper):
    hung = store.create_run(TrainConfig(), "g")
    fresh = store.create_run(TrainConfig(), "g")
    sleeper = reaper.popen(lookalike(hung))
    now = time.time()
    store.transition(
        hung, ("queued",), "running", pid=sleeper.pid, started_at=now - 200, heartbeat=now - 100
    )
    fresh_sleeper = reaper.popen(lookalike(fresh))
    store.transition(
        fresh, ("queued",), "running", pid=fresh_sleeper.pid, started_at=now, heartbeat=now
    )
    store.add_batch(hung, batch_event(1))
    store.update(hung, heartbeat=now - 100)

    # No store: any worker's command line is enough (the sleepers began after "started_at").
    runner = reaper.runner(LocalProcessBackend(), stale_after=5, max_concurrent=1)
    runner.tick()
    run = store.get(hung)
    assert run.status == "interrupted"
    assert "heartbeat" in run.error, run.error
    assert sleeper.wait(timeout=60) == -signal.SIGKILL  # hung: killed so it can never write
    assert len(store.batch_metrics([hung])) == 1
    # A run with a recent heartbeat is left alone.
    assert store.get(fresh).status == "running"
    assert fresh_sleeper.poll() is None


def test_new_runner_adopts_running_worker_after_restart(store, reaper, mnist_dir):
    first = reaper.runner(max_concurrent=1)
    (run_id,) = first.submit([long_config(mnist_dir)])
    first.start()
    describe = describer(store, run_id)
    wait_for(lambda: store.batch_metrics([run_id]), "first batch metrics", describe=describe)
    pid = store.get(run_id).pid

    first.stop()  # the UI server goes away; its worker runs on in its own session
    del first
    assert not is_gone(pid)
    beat = store.get(run_id).heartbeat

    second = reaper.runner(max_concurrent=1)  # a fresh backend that never started anything
    assert second.backend is not reaper.runners[0].backend
    second.tick()
    assert store.get(run_id).status == "running", describe()
    # Still adopted over a few passes, with heartbeats still coming in.
    wait_for(
        lambda: store.get(run_id).heartbeat > beat,
        "a newer heartbeat",
        timeout=60,
        tick=second.tick,
        describe=describe,
    )
    assert store.get(run_id).status == "running", describe()
    rows = store.batch_metrics([run_id])

    os.kill(pid, signal.SIGKILL)  # the worker is not the new runner's child: it sees a zombie
    run = wait_finished(
        store,
        run_id,
        "the new runner to notice the dead worker",
        timeout=60,
        tick=second.tick,
        describe=describe,
    )
    assert run.status == "interrupted"
    assert "worker process exited" in run.error, run.error
    after = store.batch_metrics([run_id])
    assert all(row in after for row in rows)


def test_run_with_vanished_pid_is_interrupted_on_first_tick(store, reaper):
    for _ in range(5):  # a pid that surely belongs to no process (not even a reused one)
        done = subprocess.Popen([sys.executable, "-c", "pass"])
        done.wait(timeout=60)
        if is_gone(done.pid):
            break
    assert is_gone(done.pid)
    run_id = store.create_run(TrainConfig(), "g")
    now = time.time()
    store.transition(run_id, ("queued",), "running", pid=done.pid, started_at=now, heartbeat=now)
    queued = store.create_run(TrainConfig(), "g")

    backend = SleeperBackend()
    runner = reaper.runner(backend, max_concurrent=1, stale_after=300)
    runner.tick()
    run = store.get(run_id)
    assert run.status == "interrupted"
    assert "worker process exited" in run.error, run.error
    assert run.finished_at is not None
    assert backend.signals == []  # nothing to signal: it was gone
    assert backend.started == [queued]  # and its slot went to the queue in the same pass


# -- a worker that fails ------------------------------------------------------------------------


def test_worker_failure_is_a_one_line_error_naming_the_file(store, reaper, tmp_path):
    good = write_mnist(tmp_path / "good")
    bad = tmp_path / "bad"
    bad.mkdir()
    data = (good / "mnist.npz").read_bytes()
    (bad / "mnist.npz").write_bytes(data[: len(data) // 2])  # a truncated download

    runner = reaper.runner(max_concurrent=1)
    (run_id,) = runner.submit([quick_config(bad)])
    runner.start()
    describe = describer(store, run_id)
    run = wait_finished(store, run_id, "the run to fail", describe=describe)
    assert run.status == "failed", describe()
    assert run.error and "\n" not in run.error
    assert str(bad / "mnist.npz") in run.error, run.error
    assert run.stage == "loading data"  # where it failed
    assert run.finished_at is not None and run.test_accuracy is None
    assert store.batch_metrics([run_id]) == [] and store.epoch_metrics([run_id]) == []


@pytest.mark.parametrize("knows_store", [False, True])
def test_a_reused_pid_is_never_signalled(store, reaper, knows_store):
    """After a restart a stored pid may belong to an unrelated process: the run is
    interrupted, and that process is left alone."""
    stranger = reaper.popen([sys.executable, "-c", "import time; time.sleep(600)"])
    run_id = store.create_run(TrainConfig(), "g")
    now = time.time()
    store.transition(
        run_id, ("queued",), "running", pid=stranger.pid, started_at=now - 200, heartbeat=now - 100
    )
    backend = LocalProcessBackend(store if knows_store else None)
    runner = reaper.runner(backend, stale_after=5, max_concurrent=1)
    runner.tick()
    assert store.get(run_id).status == "interrupted"
    assert stranger.poll() is None  # not killed


# -- stages and the standby worker --------------------------------------------------------------


def test_stage_events_go_into_the_store(store):
    run_id = store.create_run(TrainConfig(), "g")
    record_event(store, run_id, {"type": "stage", "stage": "compiling"})
    assert store.get(run_id).stage == "compiling"
    record_event(store, run_id, {"type": "stage", "stage": "evaluating on the test set"})
    assert store.get(run_id).stage == "evaluating on the test set"
    assert store.get(run_id).status == "queued"  # a stage never changes the status


class PreparingBackend(SleeperBackend):
    """A SleeperBackend that counts the runner's calls of prepare and close."""

    def __init__(self):
        super().__init__()
        self.prepared: list[int] = []  # len(started) at each prepare
        self.closed = 0

    def prepare(self, store: RunStore) -> None:
        self.prepared.append(len(self.started))

    def close(self) -> None:
        self.closed += 1


def test_the_runner_prepares_the_backend_only_while_nothing_is_active(store, reaper, mnist_dir):
    backend = PreparingBackend()
    runner = reaper.runner(backend, max_concurrent=1)
    runner.tick()
    assert backend.prepared == [0]  # idle: get ready
    first, second = runner.submit([quick_config(mnist_dir)] * 2)
    runner.tick()
    assert backend.started == [first] and backend.prepared == [0]  # it started a run instead
    store.transition(first, ("starting",), "running", started_at=time.time())
    runner.tick()
    assert backend.prepared == [0]  # a run is active: never compete with it
    store.transition(first, ("running",), "completed", finished_at=time.time())
    runner.tick()
    assert backend.started == [first, second] and backend.prepared == [0]  # the queue first
    store.transition(second, ("starting",), "completed", finished_at=time.time())
    runner.tick()
    assert backend.prepared == [0, 2]
    runner.stop()
    assert backend.closed == 1


def test_a_standby_worker_takes_the_next_run_and_a_new_one_waits_after_it(store, reaper, mnist_dir):
    runner = reaper.runner(max_concurrent=1)
    backend = runner.backend
    runner.tick()  # idle: a standby worker starts importing TensorFlow
    standby = backend.standby_pid
    assert standby is not None and worker_process(standby) is not None
    assert psutil.Process(standby).cmdline()[-3:] == [
        "-m",
        "bn_core.runs.execution.worker",
        "--standby",
    ]
    runner.tick()
    assert backend.standby_pid == standby  # one at a time

    (run_id,) = runner.submit([quick_config(mnist_dir)])
    runner.tick()
    describe = describer(store, run_id)
    assert store.get(run_id).pid == standby and backend.standby_pid is None
    stages = []

    def finished():
        run = store.get(run_id)
        if run.stage and run.stage not in stages:
            stages.append(run.stage)
        return run if not run.active else None

    run = wait_for(finished, "the standby's run to end", interval=0.02, tick=runner.tick)
    assert run.status == "completed", describe()
    assert run.pid == standby and run.test_accuracy is not None
    assert len(store.batch_metrics([run_id])) >= 1 and len(store.epoch_metrics([run_id])) == 1
    order = ["starting Python/TensorFlow", "loading data", "compiling", "training"]
    order += ["validating", "evaluating on the test set", "saving the model"]
    assert stages == [s for s in order if s in stages] and stages[-1] == "saving the model"
    assert f"run {run_id}: completed" in log_tail(store, run_id)  # its output went to its log
    wait_for(lambda: is_gone(standby), "the standby worker to exit after its one run")

    runner.tick()  # idle again: a fresh standby, never the old process
    fresh = backend.standby_pid
    assert fresh is not None and fresh != standby
    runner.stop()  # the server goes: so does the standby that had no run
    assert backend.standby_pid is None and is_gone(fresh)


def test_a_standby_worker_killed_mid_epoch_is_interrupted_and_keeps_its_metrics(
    store, reaper, mnist_dir
):
    runner = reaper.runner(max_concurrent=1, stale_after=60)
    runner.tick()
    standby = runner.backend.standby_pid
    (run_id,) = runner.submit([long_config(mnist_dir)])
    runner.start()
    describe = describer(store, run_id)
    wait_for(
        lambda: len(store.epoch_metrics([run_id])) >= 1, "first epoch metrics", describe=describe
    )
    run = store.get(run_id)
    assert run.pid == standby and run.status == "running"
    # A later server (no child of its own) recognises it as this run's worker...
    assert worker_process(standby, run) is not None and LocalProcessBackend(store).alive(standby)
    # ... but not as the worker of a run that began before the process existed.
    assert worker_process(standby, dataclasses.replace(run, started_at=run.started_at - 60)) is None
    batches, epochs = store.batch_metrics([run_id]), store.epoch_metrics([run_id])

    os.kill(standby, signal.SIGKILL)
    run = wait_finished(store, run_id, "the runner to notice the dead worker", describe=describe)
    assert run.status == "interrupted"
    assert "worker process exited" in run.error, run.error
    after_batches, after_epochs = store.batch_metrics([run_id]), store.epoch_metrics([run_id])
    assert all(row in after_batches for row in batches)
    assert all(row in after_epochs for row in epochs) and len(after_epochs) >= 1


def test_a_standby_worker_without_a_run_exits_when_its_input_ends(store, reaper):
    run_id = store.create_run(TrainConfig(), "g")
    env = {**os.environ, "BN_LAB_HOME": str(store.home)}
    for given in (b"", b"not a run id\n"):
        proc = subprocess.Popen(
            [sys.executable, "-m", "bn_core.runs.execution.worker", "--standby"],
            stdin=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        reaper.popens.append(proc)
        proc.communicate(given, timeout=DEADLINE)
        assert proc.returncode == 0
    assert store.get(run_id).status == "queued" and store.get(run_id).pid is None


def test_no_standby_worker_when_turned_off(store, monkeypatch):
    assert LocalProcessBackend().standby is True
    backend = LocalProcessBackend(standby=False)
    backend.prepare(store)
    assert backend.standby_pid is None
    backend.close()  # nothing to close: no error
    monkeypatch.setenv("BN_LAB_STANDBY", "0")
    assert LocalProcessBackend().standby is False
    assert LocalProcessBackend(standby=True).standby is True  # an explicit choice wins


def test_a_standby_lookalike_counts_only_for_a_run_it_began_before(store, reaper):
    proc = reaper.popen(lookalike_standby())
    wait_for(lambda: worker_process(proc.pid) is not None, "the lookalike to start", timeout=60)
    run_id = store.create_run(TrainConfig(), "g")
    assert worker_process(proc.pid, store.get(run_id)) is None  # no started_at: cannot tell
    run = record_running(store, proc, run_id)
    assert worker_process(proc.pid, run) is not None
    earlier = dataclasses.replace(run, started_at=run.started_at - 60)
    assert worker_process(proc.pid, earlier) is None  # created after that run began


def lookalike_standby() -> list[str]:
    """A command line like a standby worker's that only sleeps."""
    code = "import time; time.sleep(600)"
    return [sys.executable, "-c", code, "-m", "bn_core.runs.execution.worker", "--standby"]


def test_workers_share_an_xla_cache_per_machine(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_XLA_FLAGS", raising=False)
    monkeypatch.delenv("BN_LAB_XLA_CACHE", raising=False)
    folder = xla_cache_folder(tmp_path)
    assert folder == xla_cache_folder(tmp_path) and folder.parent == tmp_path / "xla-cache"
    assert folder.name.startswith(platform.machine())
    use_xla_cache(tmp_path)
    assert os.environ["TF_XLA_FLAGS"] == f"--tf_xla_persistent_cache_directory={folder}"
    assert folder.is_dir()
    use_xla_cache(tmp_path / "other")  # a cache already set is left alone
    assert os.environ["TF_XLA_FLAGS"] == f"--tf_xla_persistent_cache_directory={folder}"
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=2")
    use_xla_cache(tmp_path)
    assert os.environ["TF_XLA_FLAGS"].split() == [
        "--tf_xla_auto_jit=2",
        f"--tf_xla_persistent_cache_directory={folder}",
    ]
    monkeypatch.setenv("TF_XLA_FLAGS", "")
    for off in ("0", "off", "False"):  # any switch word (bn_core.settings)
        monkeypatch.setenv("BN_LAB_XLA_CACHE", off)
        use_xla_cache(tmp_path)
        assert os.environ["TF_XLA_FLAGS"] == ""
    monkeypatch.setenv("BN_LAB_XLA_CACHE", "none")
    with pytest.raises(SettingError, match="^BN_LAB_XLA_CACHE='none' is not one of 1/0"):
        use_xla_cache(tmp_path)


# -- which processes count as workers (bn_core.runs.execution.backends.local) -----------------


def record_running(store: RunStore, proc: subprocess.Popen, run_id: int | None = None) -> RunRecord:
    """Record ``proc`` as the running worker of ``run_id`` (a new run if None) the way a worker
    does: its pid, and a started_at taken after its process exists."""
    run_id = run_id or store.create_run(TrainConfig(), "g")
    now = time.time()
    assert store.transition(
        run_id, ("queued",), "running", pid=proc.pid, started_at=now, heartbeat=now
    )
    return store.get(run_id)


def assert_not_signalled(proc: subprocess.Popen) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.5)  # a signal sent earlier would have ended it by now


def test_a_live_stranger_is_not_a_worker_and_never_signalled(store, reaper):
    stranger = reaper.popen([sys.executable, "-c", "import time; time.sleep(30)"])
    run = record_running(store, stranger)
    assert worker_process(stranger.pid) is None
    assert worker_process(stranger.pid, run) is None
    for backend in (LocalProcessBackend(), LocalProcessBackend(store)):
        assert not backend.alive(stranger.pid)
        backend.terminate(stranger.pid)
        backend.kill(stranger.pid)
    assert_not_signalled(stranger)


def test_a_worker_of_another_run_or_started_later_is_not_the_runs_worker(store, reaper):
    """A pid reused by another worker-looking process: a different run id on its command line,
    or a process created after the run's worker had started. The run is interrupted and that
    process left alone."""
    run_id = store.create_run(TrainConfig(), "g")
    proc = reaper.popen(lookalike(run_id))
    run = record_running(store, proc, run_id)
    assert worker_process(proc.pid) is not None  # a worker's command line
    assert worker_process(proc.pid, run) is not None  # this run's: its id, created before start
    assert worker_process(proc.pid, dataclasses.replace(run, id=run_id + 1)) is None
    started_earlier = dataclasses.replace(run, started_at=run.started_at - 60)
    assert worker_process(proc.pid, started_earlier) is None
    assert worker_process(proc.pid, dataclasses.replace(run, started_at=None)) is not None

    store.update(run_id, started_at=run.started_at - 60)  # the run's own worker began long ago
    backend = LocalProcessBackend(store)
    assert not backend.alive(proc.pid)
    backend.terminate(proc.pid)
    backend.kill(proc.pid)
    runner = reaper.runner(backend, stale_after=300, max_concurrent=1)
    runner.tick()
    run = store.get(run_id)
    assert run.status == "interrupted" and "worker process exited" in run.error, run.error
    assert_not_signalled(proc)


def test_a_dead_pid_is_not_alive(store, reaper):
    run_id = store.create_run(TrainConfig(), "g")
    done = reaper.popen(lookalike(run_id, code="pass"))  # exits at once
    run = record_running(store, done, run_id)
    wait_for(lambda: is_gone(done.pid), f"process {done.pid} to exit", timeout=60)
    if os.name == "posix":  # exited, not yet waited for: a zombie
        assert psutil.Process(done.pid).status() == psutil.STATUS_ZOMBIE
    backend = LocalProcessBackend(store)
    for _ in ("zombie", "reaped"):
        assert worker_process(done.pid) is None and worker_process(done.pid, run) is None
        assert not backend.alive(done.pid)
        backend.terminate(done.pid)  # nothing to signal, and no error
        backend.kill(done.pid)
        done.wait(timeout=60)
    runner = reaper.runner(backend, stale_after=300, max_concurrent=1)
    runner.tick()
    assert store.get(run_id).status == "interrupted"


def test_a_real_worker_is_recognised_from_any_folder(
    store, reaper, mnist_dir, tmp_path, monkeypatch
):
    # Neither the repository as working folder nor PYTHONPATH: the installed package is found.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    runner = reaper.runner(max_concurrent=1)
    (run_id,) = runner.submit([long_config(mnist_dir)])
    runner.tick()
    describe = describer(store, run_id)
    run = wait_for(
        lambda: (r := store.get(run_id)).status == "running" and r,
        "the worker to claim its run",
        describe=describe,
    )
    assert psutil.Process(run.pid).cmdline()[-3:] == [
        "-m",
        "bn_core.runs.execution.worker",
        str(run_id),
    ]
    assert worker_process(run.pid, run) is not None

    adopter = LocalProcessBackend(store)  # a later server's backend: it never started the worker
    assert adopter.alive(run.pid)
    adopter.kill(run.pid)
    run = wait_finished(store, run_id, "the runner to see it killed", tick=runner.tick)
    assert run.status == "interrupted", describe()
    assert not adopter.alive(run.pid)


def test_runner_and_store_load_without_tensorflow(tmp_path):
    assert_runs_without_tensorflow(
        "import bn_core.runs.execution.runner, bn_core.runs.store.run_store", tmp_path
    )


# -- reaping: no zombie is left behind -----------------------------------------------------------


def zombie_children() -> set[int]:
    """The pids of this process's children (at any depth) that have exited but were never
    waited for: zombies (``<defunct>`` in ps)."""
    zombies = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                zombies.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return zombies


@pytest.mark.slow
def test_the_runner_reaps_every_process_it_starts(store, reaper, mnist_dir):
    # The fault-injection pass found 12 defunct workers after ~15 minutes of dashboard use:
    # every worker that ended on its own stayed a zombie, since a child was only polled while
    # its run was active. Here 20 runs (4 cancelled mid-run, one of them by a second runner
    # that adopted it, as the dashboard's next runner does), 3 window replays, and standby
    # workers that are handed runs, killed and closed: none may be left unreaped.
    before = zombie_children()  # earlier tests' leftovers are not this test's business
    first = reaper.runner(LocalProcessBackend(store, standby=True), max_concurrent=2)
    first.tick()  # idle: a standby worker starts
    standby = wait_for(lambda: first.backend.standby_pid, "a standby worker")
    os.kill(standby, signal.SIGKILL)  # dies waiting: the next idle pass replaces it
    wait_for(lambda: is_gone(standby), "the standby to die")
    first.tick()
    assert first.backend.standby_pid not in (None, standby)

    def ended(ids):
        return all(not store.get(i).active for i in ids)

    def cancel_mid_run(runner, run_ids):
        for run_id in run_ids:
            wait_for(
                lambda i=run_id: store.get(i).status == "running" and store.batch_metrics([i]),
                f"run {run_id} to train",
                timeout=3 * DEADLINE,
                describe=describer(store, run_id),
            )
            runner.cancel(run_id)

    longs = first.submit([long_config(mnist_dir, seed=s) for s in range(3)])
    quick = first.submit([quick_config(mnist_dir, seed=s) for s in range(8)])
    first.start()
    cancel_mid_run(first, longs)
    wait_for(lambda: ended(longs + quick), "11 runs to end", timeout=6 * DEADLINE)
    assert first.replay(quick[:3]) == quick[:3]
    jobs_of = store.replay_jobs
    wait_for(
        lambda: all(j.status not in ("queued", "running") for j in jobs_of(quick[:3]).values()),
        "3 replays to end",
        timeout=3 * DEADLINE,
    )
    (adopted,) = first.submit([long_config(mnist_dir, seed=9)])
    wait_for(lambda: store.get(adopted).status == "running", "the run to start")
    first.stop()  # its worker trains on; the next runner adopts it by its pid

    second = reaper.runner(LocalProcessBackend(store, standby=True), max_concurrent=2)
    second.start()
    cancel_mid_run(second, [adopted])
    quick += second.submit([quick_config(mnist_dir, seed=s) for s in range(8, 16)])
    everything = longs + quick + [adopted]
    wait_for(lambda: ended(everything), "20 runs to end", timeout=6 * DEADLINE)
    statuses = [store.get(i).status for i in everything]
    assert statuses == ["cancelled"] * 3 + ["completed"] * 16 + ["cancelled"], statuses

    wait_for(
        lambda: not zombie_children() - before,
        "no zombie after the runner's next passes",
        timeout=10,
        describe=lambda: f"zombies: {sorted(zombie_children() - before)}",
    )
    second.stop()  # closes its standby worker
    assert not zombie_children() - before
