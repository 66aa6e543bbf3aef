"""Window replays as jobs of the job runner: the store's queue
(bn_core.runs.store.replay_queue), the
runner that starts them under the training runs' limit (JobRunner.replay, tick), the local
backend's replay process (LocalProcessBackend.start_replay) and the process's own bookkeeping
(bn_core.runs.replays.job.main).

Store and runner tests use fake backends and pids. The process tests start real
``python -m bn_core.runs.replays.job`` processes on runs that have no model, so every replay
fails at once with its one-line error, before TensorFlow is imported (tests/test_replay.py
runs a real replay through the runner)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time

import psutil
import pytest

from bn_core.config import TrainConfig
from bn_core.runs.execution.runner import Backend, JobRunner, LocalProcessBackend
from bn_core.runs.replays import files as replays
from bn_core.runs.replays import job as replay_job
from bn_core.runs.store import owner
from bn_core.runs.store.run_store import RunStore

DEADLINE = 120.0  # seconds; generous, the machine is shared and small


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "home")


@pytest.fixture
def clock(monkeypatch):
    """time.time() one second later at each call: creation order is queue order, no ties."""
    ticks = itertools.count(1_000_000)
    monkeypatch.setattr(time, "time", lambda: float(next(ticks)))


def finished_run(store: RunStore, status: str = "completed") -> int:
    run_id = store.create_run(TrainConfig(variant="lenet_fc_bn2"), "g")
    assert store.transition(run_id, ("queued",), status, test_accuracy=0.5)
    return run_id


def status(store: RunStore, run_id: int) -> str | None:
    job = store.replay_jobs([run_id]).get(run_id)
    return job.status if job else None


def sleeper() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], stdin=subprocess.DEVNULL
    )


def dead_owner() -> str:
    """The owner string of a process that has exited (and been reaped)."""
    process = sleeper()
    name = owner.owner_of(process.pid)
    process.kill()
    process.wait(timeout=30)
    assert owner.alive(name) is False
    return name


# ----------------------------------------------------------------------------- the store


def test_queue_inserts_requeues_an_ended_job_and_leaves_active_ones_alone(store):
    a, b = finished_run(store), finished_run(store)
    assert store.queue_replays([a, b, a, 999]) == [a, b]  # once each; no run 999
    assert store.queue_replays([a, b]) == []  # still queued
    assert set(store.replay_jobs()) == {a, b}
    assert store.claim_replay(5, "runner") == a
    assert store.queue_replays([a]) == [] and status(store, a) == "running"
    assert store.finish_replay(a, "failed", "replay: boom", owner="runner")
    assert store.replay_jobs([a])[a].error == "replay: boom"
    assert store.queue_replays([a]) == [a]  # a failed replay can be asked for again
    job = store.replay_jobs([a])[a]
    assert (job.status, job.error, job.owner, job.pid, job.finished_at) == (
        "queued",
        None,
        None,
        None,
        None,
    )
    store.claim_replay(5, "runner")
    store.finish_replay(b, "done", owner="runner")
    assert store.queue_replays([b]) == [b]  # and so can a done one (its file removed, say)


def test_queued_runs_and_replays_start_oldest_first_one_at_a_time(store, clock):
    x, y = finished_run(store), finished_run(store)
    r1 = store.create_run(TrainConfig(), "g")
    store.queue_replays([x])
    r2 = store.create_run(TrainConfig(), "g")
    store.queue_replays([y])
    started = []
    for _ in range(4):
        run_id, replay_id = store.claim_next(1, "runner"), store.claim_replay(1, "runner")
        assert (run_id is None) != (replay_id is None), (run_id, replay_id)  # one slot
        started.append(("run", run_id) if run_id else ("replay", replay_id))
        assert store.claim_next(1, "runner") is None and store.claim_replay(1, "runner") is None
        if run_id:
            store.transition(run_id, ("starting",), "completed")
        else:
            store.finish_replay(replay_id, "done")
    assert started == [("run", r1), ("replay", x), ("run", r2), ("replay", y)]


def test_a_replay_waits_its_turn_behind_older_queued_runs_and_says_how_many(store, clock):
    x, y = finished_run(store), finished_run(store)
    store.create_run(TrainConfig(), "g")
    store.create_run(TrainConfig(), "g")
    store.queue_replays([y, x])  # queued together: by run id
    jobs = store.replay_jobs([x, y])
    assert (jobs[x].ahead, jobs[y].ahead) == (2, 3)
    assert store.claim_replay(10, "runner") is None  # two older runs go first
    assert store.claim_next(10, "runner") is not None and store.claim_next(10, "runner")
    assert store.claim_replay(10, "runner") == x and store.claim_replay(10, "runner") == y
    assert all(job.ahead is None for job in store.replay_jobs().values())  # running: no place


def test_training_runs_and_replays_share_one_limit(store):
    x = finished_run(store)
    run = store.create_run(TrainConfig(), "g")
    assert store.claim_next(1, "runner") == run
    store.transition(run, ("starting",), "running")
    store.queue_replays([x])
    assert store.claim_replay(1, "runner") is None  # the running training run holds the slot
    assert store.claim_replay(2, "runner") == x
    store.transition(run, ("running",), "completed")
    later = store.create_run(TrainConfig(), "g")
    assert store.claim_next(1, "runner") is None  # now the running replay holds it
    assert store.claim_next(2, "runner") == later


def test_a_replay_process_still_exiting_holds_its_slot(store):
    x, y = finished_run(store), finished_run(store)
    store.queue_replays([x, y])
    assert store.claim_replay(2, "runner") == x
    store.record_replay_pid(x, 501, "runner")
    assert store.claim_replay(2, "runner", pids={501}) == y  # x's process counted once
    store.record_replay_pid(y, 502, "runner")
    store.finish_replay(x, "done")
    store.queue_replays([x])
    assert store.claim_replay(2, "runner", pids={501, 502}) is None  # 501 is still exiting
    assert store.claim_replay(2, "runner", pids={502}) == x


def test_the_replay_process_takes_its_job_once(store):
    x, y = finished_run(store), finished_run(store)
    store.queue_replays([x])
    assert store.claim_replay(1, "runner") == x
    me = owner.current()
    assert store.take_replay(x, me, os.getpid()) is True
    job = store.replay_jobs([x])[x]
    assert (job.status, job.owner, job.pid) == ("running", me, os.getpid())
    assert job.started_at is not None
    assert store.take_replay(x, "elsewhere/1/1", 1) is False  # a live process holds it
    assert store.take_replay(999, me, 1) is None  # no such run: nothing to hold
    assert store.take_replay(y, me, os.getpid()) is True  # by hand, never queued: a new job
    assert status(store, y) == "running"
    gone = dead_owner()
    assert store.finish_replay(y, "failed", "boom", owner=me)
    assert store.take_replay(y, gone, 1) is True  # an ended job is taken afresh
    assert store.replay_jobs([y])[y].error is None
    assert store.take_replay(y, me, os.getpid()) is True  # its holder is dead: taken over


def test_only_the_holder_beats_and_ends_a_job(store):
    x = finished_run(store)
    assert store.take_replay(x, "host/1/1", 1)
    assert not store.replay_heartbeat(x, "host/2/2")
    assert store.replay_heartbeat(x, "host/1/1")
    assert not store.finish_replay(x, "done", owner="host/2/2")
    with pytest.raises(ValueError, match="ends done or failed. Received: 'running'"):
        store.finish_replay(x, "running")
    assert store.finish_replay(x, "done", owner="host/1/1")
    assert not store.finish_replay(x, "failed")  # ended already
    assert status(store, x) == "done"


def test_deleting_a_run_deletes_its_replay_job(store):
    x = finished_run(store)
    store.queue_replays([x])
    assert store.delete(x) and store.replay_jobs() == {}


# ----------------------------------------------------------------------------- the runner


class FakeBackend(Backend):
    """Starts nothing: training runs and replays get made-up pids, alive until ``end``ed."""

    runs_replays = True

    def __init__(self, fail: bool = False):
        self.fail = fail
        self.started: list[tuple[str, int]] = []
        self.dead: set[int] = set()
        self.killed: list[int] = []
        self.prepared = 0

    def start(self, run_id, store):
        self.started.append(("run", run_id))
        return 10**7 + run_id

    def start_replay(self, run_id, store):
        if self.fail:
            raise OSError("no room for another process")
        self.started.append(("replay", run_id))
        return 2 * 10**7 + run_id

    def prepare(self, store):
        self.prepared += 1

    def alive(self, pid):
        return pid not in self.dead

    def terminate(self, pid):
        pass

    def kill(self, pid):
        self.killed.append(pid)


def test_the_runner_starts_replays_after_older_runs_within_the_limit(store):
    backend = FakeBackend()
    runner = JobRunner(store, backend, max_concurrent=1)
    x, y = finished_run(store), finished_run(store)
    [run] = runner.submit([TrainConfig()])
    assert runner.replay([x, y]) == [x, y] and runner.replay([x]) == []
    runner.tick()
    assert backend.started == [("run", run)]
    store.transition(run, ("starting",), "completed")
    runner.tick()
    runner.tick()
    assert backend.started == [("run", run), ("replay", x)]  # one at a time
    job = store.replay_jobs([x])[x]
    assert (job.status, job.owner, job.pid) == ("running", runner.runner_id, 2 * 10**7 + x)
    assert backend.prepared == 0  # no standby worker beside a running replay
    store.finish_replay(x, "done")
    runner.tick()
    assert backend.started[-1] == ("replay", x)  # x's process has not exited yet
    assert backend.prepared == 0
    backend.dead.add(job.pid)
    runner.tick()
    assert backend.started[-1] == ("replay", y)
    store.finish_replay(y, "done")
    backend.dead.add(store.replay_jobs([y])[y].pid)
    runner.tick()
    assert backend.prepared == 1  # idle again


def test_a_replay_whose_process_died_fails_with_its_logs_last_line(store):
    backend = FakeBackend()
    runner = JobRunner(store, backend, max_concurrent=2)
    x, y = finished_run(store), finished_run(store)
    runner.replay([x, y])
    runner.tick()
    log = replays.replay_log_path(store.home, x)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("a warning\nFatal Python error: Segmentation fault\n\n")
    backend.dead.add(store.replay_jobs([x])[x].pid)  # died before it took its job
    assert store.take_replay(y, dead_owner(), 1)  # took its job, then died
    runner.tick()
    jobs = store.replay_jobs([x, y])
    assert (jobs[x].status, jobs[y].status) == ("failed", "failed")
    assert jobs[x].error == (
        "the replay process exited; its log ends: Fatal Python error: Segmentation fault"
    )
    assert jobs[y].error == "the replay process exited, its log is empty"


def test_a_replay_that_stops_beating_is_killed_and_fails(store):
    backend = FakeBackend()
    runner = JobRunner(store, backend, max_concurrent=1, stale_after=0.2)
    x = finished_run(store)
    assert store.take_replay(x, owner.current(), 4242)  # alive (this process), but silent
    runner.tick()
    assert status(store, x) == "running" and backend.killed == []
    time.sleep(0.3)
    runner.tick()
    job = store.replay_jobs([x])[x]
    assert job.status == "failed" and backend.killed == [4242]
    assert job.error.startswith("the replay process stopped sending heartbeats")


def test_a_replay_that_cannot_start_fails_and_the_next_one_starts(store):
    runner = JobRunner(store, FakeBackend(fail=True), max_concurrent=1)
    x, y = finished_run(store), finished_run(store)
    runner.replay([x, y])
    runner.tick()
    jobs = store.replay_jobs()
    assert [j.status for j in jobs.values()] == ["failed", "failed"]
    assert jobs[x].error == "could not start the replay process: no room for another process"


def test_a_backend_that_runs_no_replays_leaves_them_queued(store):
    from tests.helpers import RecordingBackend

    runner = JobRunner(store, RecordingBackend(), max_concurrent=1)
    x = finished_run(store)
    runner.replay([x])
    runner.tick()
    assert status(store, x) == "queued"


# ----------------------------------------------------------------------------- real processes


def replay_processes() -> list[psutil.Process]:
    """This test process's live children that are replay processes."""
    found = []
    for child in psutil.Process().children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "bn_core.runs.replays.job" in (
                child.cmdline()
            ):
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def test_replay_all_of_five_runs_with_one_slot_runs_them_one_after_another(store):
    """Five real replay processes (each fails at once: no model) through the runner with
    max_concurrent 1: never two running in the store nor two alive at a sample, and each
    process took its job only after the previous one had ended its own."""
    backend = LocalProcessBackend(store, standby=False)
    runner = JobRunner(store, backend, max_concurrent=1)
    ids = [finished_run(store) for _ in range(5)]
    assert runner.replay(ids) == ids
    most_running, most_processes = 0, 0
    end = time.monotonic() + DEADLINE
    try:
        while any(job.status in ("queued", "running") for job in store.replay_jobs().values()):
            assert time.monotonic() < end, store.replay_jobs()
            runner.tick()
            running = store.replay_jobs(statuses=("running",))
            most_running = max(most_running, len(running))
            most_processes = max(most_processes, len(replay_processes()))
            time.sleep(0.02)
    finally:
        for child in backend._children.values():
            child.kill()
            child.wait(timeout=30)
    jobs = sorted(store.replay_jobs().values(), key=lambda job: job.started_at)
    assert most_running == 1 and most_processes == 1
    assert len({job.pid for job in jobs}) == 5 and os.getpid() not in {job.pid for job in jobs}
    for before, after in itertools.pairwise(jobs):
        assert before.finished_at <= after.started_at, (before, after)
    for job in jobs:
        assert job.status == "failed"
        assert job.error.startswith(f"run #{job.run_id} has no saved model (runs finished")


def test_the_local_backend_starts_the_replay_module_with_a_fresh_log(store):
    stale = replays.replay_progress_path(store.home, 42)
    replays.write_progress(stale, "replaying choice 2 of 8", 1, 8)  # a replay killed earlier
    log = replays.replay_log_path(store.home, 42)
    log.write_text("an earlier replay's output\n")
    backend = LocalProcessBackend(store, standby=False)
    pid = backend.start_replay(42, store)
    assert not stale.exists()
    assert backend._children[pid].wait(timeout=60) == 1
    assert replays.last_log_line(log).startswith("replay: run 42 does not exist in the store at ")
    assert "earlier" not in log.read_text()
    assert store.replay_jobs() == {}  # no run: no job either
    assert replays.last_log_line(store.home / "missing.log") is None


def test_the_replay_process_ends_its_job_failed_with_its_one_line_error(store, monkeypatch, capsys):
    monkeypatch.setenv("BN_LAB_HOME", str(store.home))
    x = finished_run(store)
    assert replay_job.main([str(x)]) == 1
    error = capsys.readouterr().err.strip()
    job = store.replay_jobs([x])[x]
    assert (job.status, job.owner, job.pid) == ("failed", owner.current(), os.getpid())
    assert f"replay: {job.error}" == error and "has no saved model" in error
    # Held by another live process: this one leaves it alone.
    store.queue_replays([x])
    store.take_replay(x, "elsewhere/1/1", 1)
    assert replay_job.main([str(x)]) == 1
    assert "is being replayed by another process" in capsys.readouterr().err
    assert store.replay_jobs([x])[x].owner == "elsewhere/1/1"


def test_the_replay_process_beats_while_it_works_and_ends_done(store, monkeypatch):
    monkeypatch.setenv("BN_LAB_HOME", str(store.home))
    monkeypatch.setattr(replay_job, "HEARTBEAT_SECONDS", 0.05)
    x = finished_run(store)
    beats = []

    def replay_run(run_id, store):
        first = store.replay_jobs([run_id])[run_id].heartbeat
        time.sleep(0.5)
        beats.append((first, store.replay_jobs([run_id])[run_id]))
        return replays.replay_path(store.home, run_id)

    monkeypatch.setattr(replay_job, "replay_run", replay_run)
    assert replay_job.main([str(x)]) == 0
    first, during = beats[0]
    assert during.status == "running" and during.heartbeat > first
    assert status(store, x) == "done" and store.replay_jobs([x])[x].error is None


def test_runs_queued_for_a_cluster_and_replays_do_not_wait_for_each_other(store, clock):
    """Replays run here; runs queued for Ray run there: two queues, two limits."""
    x = finished_run(store)
    (on_ray,) = store.create_runs([TrainConfig()], "g", backend="ray")
    store.queue_replays([x])
    later_ray = store.create_runs([TrainConfig(seed=1)], "g", backend="ray")[0]
    assert store.replay_jobs([x])[x].ahead == 0  # the older Ray run is not ahead of it
    running_here = store.create_run(TrainConfig(), "g")
    store.transition(running_here, ("queued",), "running")  # this machine's one slot: taken
    assert store.claim_replay(1, "runner") is None  # waits for this machine's slot
    assert store.claim_next(2, "runner", "ray") == on_ray
    assert store.claim_next(2, "runner", "ray") == later_ray  # the older replay holds it not
    assert store.claim_next(2, "runner", "ray") is None  # its limit: 2 Ray runs active
    store.transition(running_here, ("running",), "completed")
    assert store.claim_replay(1, "runner") == x  # Ray runs do not count against this machine
