"""The job runner: a queue of runs, started as worker processes, at most N at a time.
(Over 300 lines: claiming, judging, cancelling and window replays share one lock and one pass.)

The interface is backend-neutral: ``submit`` (configs -> queued runs in the store), ``cancel``,
``status``, and metrics flow into the store from wherever a run executes. Backends live in
``bn_core.runs.execution.backends``: ``LocalProcessBackend`` (the default, re-exported here)
runs each job as ``python -m bn_core.runs.execution.worker RUN_ID`` in its own process session;
a distributed backend (Ray, say) subclasses the same ``Backend``, whose every method the
runner calls (a backend inherits the documented default of those it does not need). A run's
``handle`` is what its backend's ``start`` returned.

When no run is active the runner calls the backend's ``prepare``: the local backend then keeps
a standby worker that has already imported TensorFlow, so the next run's first point comes
seconds sooner. ``submit`` wakes the scheduling thread at once.

Window replays (``replay``: ``python -m bn_core.runs.replays.job RUN_ID``, TensorFlow too) are
jobs of the same queue and limit (``bn_core.runs.store.replay_queue``: queued runs and replays
start oldest first), started with the backend's ``start_replay`` when it ``runs_replays``. A
replay whose process is gone, or whose heartbeat is older than ``stale_after``, becomes
``failed`` with its log's last line.

Cancellation escalates: the run's cancel flag (the worker polls it and stops cleanly), then
SIGTERM after ``cancel_grace`` seconds, then SIGKILL after twice that. A run whose process
is gone, or whose heartbeat is older than ``stale_after``, becomes ``interrupted``; every
metric it recorded stays in the store. A process is "gone" by its owner string
(``bn_core.runs.store.owner``: host, pid and start time), so runs that a ``study`` trains in its own
process are covered too; runs of other machines are judged by their heartbeats alone.

A runner registers itself in the store (``presence``) while it runs, so ``submit`` can say
whether anyone will start a queued run. When the store cannot be written (disk full, I/O
errors) the runner backs off, says so once on stderr (``problem`` holds the line for a UI),
and does not judge heartbeats until writing works again: nobody could write one meanwhile.
Dead runs without a runner are ``bn_core.runs.execution.reaper``'s.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import uuid

from bn_core import settings
from bn_core.atomic import remove_partials
from bn_core.config import TrainConfig
from bn_core.messages import one_line
from bn_core.runs.execution import caps
from bn_core.runs.execution.backends import Backend
from bn_core.runs.execution.backends.local import LocalProcessBackend
from bn_core.runs.execution.reaper import dead, reap
from bn_core.runs.execution.resume import resume as resume_run
from bn_core.runs.replays import files as replays
from bn_core.runs.store import owner
from bn_core.runs.store.errors import StoreError
from bn_core.runs.store.run_store import RunRecord, RunStore
from bn_core.vocabulary import STARTED, ReplayStatus, RunStatus

__all__ = [
    "Backend",
    "JobRunner",
    "LocalProcessBackend",
    "dead",
    "default_concurrency",
    "reap",
]


def default_concurrency() -> int:
    """``$BN_LAB_MAX_CONCURRENT`` (a bad value is a SettingError), else one run at a time on
    small machines (a run uses both cores of a 2-core box) and cores/2 above."""
    chosen = settings.value("BN_LAB_MAX_CONCURRENT")
    if chosen is not None:
        return chosen
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else cores // 2


class JobRunner:
    """Schedules queued runs onto a backend. ``tick()`` is one pass; ``start()`` loops it."""

    def __init__(
        self,
        store: RunStore,
        backend: Backend | None = None,
        *,
        max_concurrent: int | None = None,
        poll_interval: float = 0.5,
        stale_after: float = 30.0,
        cancel_grace: float = 10.0,
        kind: str = "dashboard",
        cluster: Backend | None = None,
    ):
        self.store = store
        self.backend = backend or LocalProcessBackend(store)
        # Runs queued for Ray go to ``cluster`` (a RayBackend; made when the first such run
        # waits, so nothing imports Ray before); ``cluster_problem`` says why it cannot.
        self.cluster = cluster
        self.cluster_problem: str | None = None
        # Ray runs this runner may claim (None: any). A run's relay lives in the process that
        # claimed it: a runner that leaves once its own runs end (``submit --wait``) must
        # not take others' runs along.
        self.cluster_claims: set[int] | None = None
        # Local runs this runner may claim (None: any queued local run, as the dashboard's and
        # `submit --wait`'s do). A study's runner takes only the study's own runs, never
        # runs an earlier study left queued in the same store.
        self.local_claims: set[int] | None = None
        self._cluster_lock = threading.Lock()
        self._cluster_probe: threading.Thread | None = None  # asking the cluster for its room
        self._cluster_answer: int | Exception | None = None  # what it said, not yet used
        self._cluster_asked = 0.0
        self.max_concurrent = max_concurrent or default_concurrency()
        self.poll_interval = poll_interval
        self.stale_after = stale_after
        self.cancel_grace = cancel_grace
        self._cancel_since: dict[int, float] = {}
        self._replay_handles: set[int] = set()  # replays this runner started, until gone
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.kind = kind  # who runs it, as ``presence`` lists it
        self.runner_id = f"{owner.current()}/{uuid.uuid4().hex[:6]}"
        self.problem: str | None = None  # the store problem scheduling is waiting out, if any
        self._problem_lock = threading.Lock()  # the thread and ``wait`` both meet problems
        self._swept = 0.0  # when stale partial files were last removed
        self._writable_since = 0.0  # after a store problem: heartbeats are judged from then on

    # -- the interface ------------------------------------------------------------------------

    def submit(
        self,
        configs: list[TrainConfig],
        group_id: str | None = None,
        group_name: str | None = None,
        backend: str = "local",
    ) -> list[int]:
        """Queue one run per config (validated first, so nothing is queued on a bad one), in
        group ``group_id`` (a new one by default) named ``group_name`` (by default after its
        variants, seeds and time; a group that exists keeps its name), to execute on
        ``backend`` (``local`` or ``ray``: ``bn_core.runs.execution.backends``). Raises
        ``caps.CapError`` (a ConfigError) when the submission or the queue would go over its
        cap (``bn_core.runs.execution.caps``); then nothing is queued either."""
        for config in configs:
            config.validate()
        caps.check_submit(len(configs), self.store.count_runs((RunStatus.QUEUED,)))
        group = group_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        ids = self.store.create_runs(configs, group, group_name=group_name, backend=backend)
        self._wake.set()
        return ids

    def cancel(self, run_id: int) -> None:
        """Cancel a queued run at once; ask a running one to stop (escalating if it won't)."""
        queued, cancelled = (RunStatus.QUEUED,), RunStatus.CANCELLED
        if self.store.transition(run_id, queued, cancelled, finished_at=time.time()):
            return
        self.store.request_cancel(run_id)
        self._wake.set()

    def resume(self, run_id: int) -> str:
        """Queue an interrupted, cancelled or failed run again to continue from its checkpoint
        (``bn_core.runs.execution.resume``); returns what will happen, in one line."""
        message = resume_run(self.store, run_id)
        self._wake.set()
        return message

    def status(self, run_id: int) -> RunRecord | None:
        return self.store.get(run_id)

    def wait(self, run_ids: list[int], poll: float = 0.5) -> list[RunRecord]:
        """Schedule (in the background thread) until every run in ``run_ids`` has ended.
        While the store cannot be read (an I/O error, say) it keeps waiting, as the
        scheduling thread does; ``problem`` says why."""
        self.start()
        while True:
            try:
                runs = [self.store.get(i) for i in run_ids]
            except StoreError as exc:
                self._meet(exc)  # said here if first: the thread will not say it again
                time.sleep(max(poll, 2.0))
                continue
            if not any(run is not None and run.active for run in runs):
                return runs
            time.sleep(poll)

    def replay(self, run_ids: list[int]) -> list[int]:
        """Queue a window replay of each run, to start under the same limit as training runs;
        returns the ids queued (a replay already queued or running is left alone)."""
        queued = self.store.queue_replays(run_ids)
        self._wake.set()
        return queued

    # -- scheduling -----------------------------------------------------------------------------

    def tick(self) -> None:
        """Detect dead runs, escalate cancels, then start queued runs up to the limit; when
        nothing is active, let the backend get ready for the next run."""
        with self._lock:
            self.backend.reap()  # exited children: waited for, never left as zombies
            now = time.time()
            self.store.runner_heartbeat(self.runner_id)  # this runner is alive (presence)
            if self.problem is not None:  # the store works again: nobody could write a
                self._writable_since = now  # heartbeat meanwhile, so judge them from now on
            active = self.store.list_runs(STARTED)
            for run in active:
                self._check(run, now)
            replaying = self._check_replays(now)
            for run_id in set(self._cancel_since) - {run.id for run in active}:
                del self._cancel_since[run_id]  # ended on its own
            claimed, me = False, owner.current()
            mine = self.local_claims
            while run_id := self.store.claim_next(self.max_concurrent, me, "local", mine):
                claimed = True
                try:
                    handle = self.backend.start(run_id, self.store)
                except OSError as exc:
                    self.store.transition(
                        run_id,
                        (RunStatus.STARTING,),
                        RunStatus.FAILED,
                        error=f"could not start worker: {exc}",
                        finished_at=time.time(),
                    )
                    continue
                self.store.update(run_id, pid=handle)  # the ``pid`` column holds handles
            claimed = self._start_on_cluster(me) or claimed
            claimed = self._start_replays() or claimed
            busy = active or claimed or replaying or self._replay_handles  # until they exit
            if not busy:
                self.backend.prepare(self.store)
            if not busy and now - self._swept > SWEEP_EVERY:
                self._swept = now
                for folder in PARTIALS_IN:  # files half written by killed workers
                    remove_partials(self.store.home / folder)

    def ensure_cluster(self) -> Backend:
        """``cluster``, made (a RayBackend for ``$RAY_ADDRESS``) if there is none yet; one
        per runner, whichever thread (the scheduler's, a page's) asks first."""
        with self._cluster_lock:
            if self.cluster is None:
                from bn_core.runs.execution.backends.ray_backend import RayBackend

                self.cluster = RayBackend()
            return self.cluster

    def _backend_of(self, run: RunRecord) -> Backend | None:
        """The backend that executes ``run`` for this runner. None for a Ray run of another
        process (or when this runner has no cluster): its handle means something only to the
        backend that started it, so only its owner and heartbeats can tell."""
        if run.backend_name != "ray":
            return self.backend
        return self.cluster if owner.pid_of(run.owner) == os.getpid() else None

    def _start_on_cluster(self, me: str) -> bool:
        """Start runs queued for Ray while the cluster has room; whether any started. When
        the cluster cannot be reached they stay queued, and ``cluster_problem`` says why
        (the dashboard offers to run them locally instead)."""
        if not self.store.queued_for("ray"):
            self.cluster_problem = None
            return False
        room = self._cluster_room()
        if room is None:
            return False
        claimed = False
        only = self.cluster_claims
        while (run_id := self.store.claim_next(room, me, "ray", only)) is not None:
            claimed = True
            try:
                handle = self.cluster.start(run_id, self.store)
            except Exception as exc:  # noqa: BLE001 - the cluster went away: queue it again
                self.store.transition(
                    run_id, (RunStatus.STARTING,), RunStatus.QUEUED, owner=None, heartbeat=None
                )
                self._cluster_gone(exc)
                break
            self.store.update(run_id, pid=handle)  # the ``pid`` column holds handles
        return claimed

    def _cluster_room(self) -> int | None:
        """The cluster's room for runs, or None while it cannot say (``cluster_problem``
        says why). Asking may take a minute when a cluster does not answer: that happens in
        a thread of its own, at most every ``CLUSTER_RETRY`` seconds, never in this pass
        (which also starts local runs and escalates cancels)."""
        probe = self._cluster_probe
        if probe is not None and probe.is_alive():
            return None
        if self._cluster_answer is not None:
            answer, self._cluster_answer = self._cluster_answer, None
            if isinstance(answer, int):
                self.cluster_problem = None
                return answer
            self._cluster_gone(answer)
        if time.time() - self._cluster_asked < (CLUSTER_RETRY if self.cluster_problem else 0):
            return None
        self._cluster_asked = time.time()

        def ask() -> None:
            try:
                room = self.ensure_cluster().capacity()  # None: no limit of its own
                self._cluster_answer = self.max_concurrent if room is None else room
            except Exception as exc:  # noqa: BLE001 - ClusterError, or Ray failing to connect
                self._cluster_answer = exc
            self._wake.set()

        self._cluster_probe = threading.Thread(target=ask, name="bn-lab-cluster", daemon=True)
        self._cluster_probe.start()
        return None

    def _cluster_gone(self, exc: Exception) -> None:
        """Keep why the cluster cannot take runs (``cluster_problem``); say it once on stderr."""
        line = one_line(exc)
        if line != self.cluster_problem:
            waiting = self.store.queued_for("ray")
            print(f"bn-lab runner: {line} ({waiting} runs wait for Ray)", file=sys.stderr)
        self.cluster_problem = line

    def _check(self, run: RunRecord, now: float) -> None:
        backend = self._backend_of(run)
        gone = dead(run, backend)
        beat = max(run.heartbeat or 0.0, self._writable_since)
        stale = run.heartbeat is not None and now - beat > self.stale_after
        if gone or stale:
            self._cancel_since.pop(run.id, None)
            # Re-read: the worker may have finished between our list and now.
            latest = self.store.get(run.id)
            if latest and latest.active:
                if stale and not gone and run.handle is not None and backend is not None:
                    backend.kill(run.handle)  # hung: make sure it cannot write later
                reason = "worker process exited" if gone else "worker stopped sending heartbeats"
                self.store.transition(
                    run.id,
                    STARTED,
                    RunStatus.CANCELLED if latest.cancel_requested else RunStatus.INTERRUPTED,
                    error=f"{reason}; metrics up to then are kept",
                    finished_at=now,
                )
            return
        if run.cancel_requested and run.handle is not None and backend is not None:
            since = self._cancel_since.setdefault(run.id, now)
            if now - since > 2 * self.cancel_grace:
                backend.kill(run.handle)
            elif now - since > self.cancel_grace:
                backend.terminate(run.handle)

    def _start_replays(self) -> bool:
        """Start queued replays on the backend while the limit allows; whether any started.
        A replay process of ours that has ended its job but not exited yet (TensorFlow takes
        a while to unload) still holds its slot: the limit holds for processes, not only for
        rows of the store."""
        if not self.backend.runs_replays:
            return False
        handles = {handle for handle in self._replay_handles if self.backend.alive(handle)}
        self._replay_handles = handles
        claimed, me = False, self.runner_id
        while (run_id := self.store.claim_replay(self.max_concurrent, me, handles)) is not None:
            claimed = True
            try:
                handle = self.backend.start_replay(run_id, self.store)
            except OSError as exc:
                error = f"could not start the replay process: {exc}"
                self.store.finish_replay(run_id, ReplayStatus.FAILED, error, owner=self.runner_id)
                continue
            self.store.record_replay_pid(run_id, handle, self.runner_id)
            handles.add(handle)
        if claimed:
            self._wake.set()  # a queued run may be next in line now: another pass at once
        return claimed

    def _check_replays(self, now: float) -> int:
        """End ``failed`` the running replays whose process is gone or stopped sending
        heartbeats; returns how many still run. Like ``dead`` for a starting run: by the
        owner, and, while this runner holds a job its process has not taken yet, by its pid."""
        running = 0
        for job in self.store.replay_jobs(statuses=(ReplayStatus.RUNNING,)).values():
            unclaimed = job.started_at is None and job.owner == self.runner_id
            gone = owner.alive(job.owner) is False or (
                unclaimed and job.pid is not None and not self.backend.alive(job.pid)
            )
            beat = max(job.heartbeat or 0.0, self._writable_since)
            stale = job.heartbeat is not None and now - beat > self.stale_after
            if not (gone or stale):
                running += 1
                continue
            if stale and not gone and job.pid is not None:
                self.backend.kill(job.pid)  # hung: make sure it cannot write later
            reason = "exited" if gone else "stopped sending heartbeats"
            line = replays.last_log_line(replays.replay_log_path(self.store.home, job.run_id))
            error = f"the replay process {reason}" + (
                f"; its log ends: {line}" if line else ", its log is empty"
            )
            self.store.finish_replay(job.run_id, ReplayStatus.FAILED, error, owner=job.owner)
        return running

    def start(self) -> JobRunner:
        """Run ``tick`` in a daemon thread until ``stop``; idempotent."""
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            with contextlib.suppress(StoreError):  # a read-only store: nothing to announce
                self.store.register_runner(self.runner_id, self.kind)
            self._thread = threading.Thread(target=self._loop, name="bn-lab-runner", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop scheduling (running workers go on) and close the backend's standby, if any."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self.backend.close()
            self.backend.reap()
        with contextlib.suppress(StoreError):
            self.store.unregister_runner(self.runner_id)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            wait = self.poll_interval
            try:
                self.tick()
                with self._problem_lock:
                    if self.problem is not None:
                        print("bn-lab runner: the run store works again", file=sys.stderr)
                        self.problem = None
            except StoreError as exc:
                self._meet(exc)
                wait = BACKOFF
            except Exception as exc:  # noqa: BLE001 - a bad pass must not kill the scheduler
                print(f"bn-lab runner: {one_line(exc, None, typed=True)}", file=sys.stderr)
            self._wake.wait(wait)
            self._wake.clear()

    def _meet(self, exc: StoreError) -> None:
        """Keep ``exc`` as ``problem``, saying it on stderr once: when it is first met, by
        the scheduling thread or by ``wait`` (``submit --wait``), whichever meets it first."""
        with self._problem_lock:
            if self.problem is None:  # say it once, not every pass
                print(f"bn-lab runner: {exc}; retrying every {BACKOFF:g} s", file=sys.stderr)
            self.problem = str(exc)


BACKOFF = 5.0  # seconds between scheduling passes while the store cannot be written
CLUSTER_RETRY = 30.0  # seconds between asking a Ray cluster that did not answer
SWEEP_EVERY = 60.0  # seconds between looks for partial files (only while nothing runs)
PARTIALS_IN = ("models", "checkpoints", "replays")  # folders of the store's atomic writes
