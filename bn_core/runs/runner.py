"""The job runner: a queue of runs, started as worker processes, at most N at a time.

The interface is backend-neutral: ``submit`` (configs -> queued runs in the store),
``cancel``, ``status``, and metrics flow into the store from wherever a run executes.
``LocalProcessBackend`` runs each job as ``python -m bn_core.runs.worker RUN_ID`` in its own
process session; a distributed backend (Ray, say) implements the same four methods.

Cancellation escalates: the run's cancel flag (the worker polls it and stops cleanly), then
SIGTERM after ``cancel_grace`` seconds, then SIGKILL after twice that. A run whose process
is gone, or whose heartbeat is older than ``stale_after``, becomes ``interrupted``; every
metric it recorded stays in the store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Protocol

from bn_core.config import TrainConfig
from bn_core.runs.store import RunRecord, RunStore

_REPO_ROOT = Path(__file__).resolve().parent.parent


def default_concurrency() -> int:
    """One run at a time on small machines (a run uses both cores of a 2-core box)."""
    env = os.environ.get("BN_LAB_MAX_CONCURRENT")
    if env and env.isdecimal() and env.isascii() and int(env) > 0:
        return int(env)
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else cores // 2


class Backend(Protocol):
    """Where runs execute. A handle is whatever the backend needs to find the run again."""

    def start(self, run_id: int, store: RunStore) -> int: ...
    def alive(self, pid: int) -> bool: ...
    def terminate(self, pid: int) -> None: ...
    def kill(self, pid: int) -> None: ...


class LocalProcessBackend:
    """Each run is a child process in a new session; its output goes to ``logs/run-ID.log``."""

    def __init__(self):
        self._children: dict[int, subprocess.Popen] = {}

    def start(self, run_id: int, store: RunStore) -> int:
        logs = store.home / "logs"
        logs.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "BN_LAB_HOME": str(store.home.resolve()),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(_REPO_ROOT), os.environ.get("PYTHONPATH")])
            ),
        }
        with open(logs / f"run-{run_id}.log", "ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "bn_core.runs.worker", str(run_id)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal or a UI reload does not reach it
            )
        self._children[child.pid] = child
        return child.pid

    def alive(self, pid: int) -> bool:
        child = self._children.get(pid)
        if child is not None:
            if child.poll() is None:
                return True
            del self._children[pid]  # reaped
            return False
        # A worker started by an earlier server process. After a restart its pid may belong
        # to an unrelated process now, so it only counts if it still is a bn_core worker.
        return _pid_alive(pid) and _is_worker(pid)

    def terminate(self, pid: int) -> None:
        if pid in self._children or _is_worker(pid):
            _signal(pid, signal.SIGTERM)

    def kill(self, pid: int) -> None:
        if pid in self._children or _is_worker(pid):
            _signal(pid, signal.SIGKILL)


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
    ):
        self.store = store
        self.backend = backend or LocalProcessBackend()
        self.max_concurrent = max_concurrent or default_concurrency()
        self.poll_interval = poll_interval
        self.stale_after = stale_after
        self.cancel_grace = cancel_grace
        self._cancel_since: dict[int, float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- the interface ------------------------------------------------------------------------

    def submit(self, configs: list[TrainConfig], group_id: str | None = None) -> list[int]:
        """Queue one run per config (validated first, so nothing is queued on a bad one)."""
        for config in configs:
            config.validate()
        group = group_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        ids = [self.store.create_run(config, group) for config in configs]
        self._wake.set()
        return ids

    def cancel(self, run_id: int) -> None:
        """Cancel a queued run at once; ask a running one to stop (escalating if it won't)."""
        if self.store.transition(run_id, ("queued",), "cancelled", finished_at=time.time()):
            return
        self.store.request_cancel(run_id)
        self._wake.set()

    def status(self, run_id: int) -> RunRecord | None:
        return self.store.get(run_id)

    def wait(self, run_ids: list[int], poll: float = 0.5) -> list[RunRecord]:
        """Schedule (in the background thread) until every run in ``run_ids`` has ended."""
        self.start()
        while any(self.store.get(i).active for i in run_ids):
            time.sleep(poll)
        return [self.store.get(i) for i in run_ids]

    # -- scheduling -----------------------------------------------------------------------------

    def tick(self) -> None:
        """Detect dead runs, escalate cancels, then start queued runs up to the limit."""
        with self._lock:
            now = time.time()
            active = self.store.list_runs(("starting", "running"))
            for run in active:
                self._check(run, now)
            for run_id in set(self._cancel_since) - {run.id for run in active}:
                del self._cancel_since[run_id]  # ended on its own
            while (run_id := self.store.claim_next(self.max_concurrent)) is not None:
                try:
                    pid = self.backend.start(run_id, self.store)
                except OSError as exc:
                    self.store.transition(
                        run_id,
                        ("starting",),
                        "failed",
                        error=f"could not start worker: {exc}",
                        finished_at=time.time(),
                    )
                    continue
                self.store.update(run_id, pid=pid)

    def _check(self, run: RunRecord, now: float) -> None:
        gone = run.pid is not None and not self.backend.alive(run.pid)
        stale = run.heartbeat is not None and now - run.heartbeat > self.stale_after
        if gone or stale:
            self._cancel_since.pop(run.id, None)
            # Re-read: the worker may have finished between our list and now.
            latest = self.store.get(run.id)
            if latest and latest.active:
                if stale and not gone and run.pid is not None:
                    self.backend.kill(run.pid)  # hung: make sure it cannot write later
                reason = "worker process exited" if gone else "worker stopped sending heartbeats"
                self.store.transition(
                    run.id,
                    ("starting", "running"),
                    "cancelled" if latest.cancel_requested else "interrupted",
                    error=f"{reason}; metrics up to then are kept",
                    finished_at=now,
                )
            return
        if run.cancel_requested and run.pid is not None:
            since = self._cancel_since.setdefault(run.id, now)
            if now - since > 2 * self.cancel_grace:
                self.backend.kill(run.pid)
            elif now - since > self.cancel_grace:
                self.backend.terminate(run.pid)

    def start(self) -> JobRunner:
        """Run ``tick`` in a daemon thread until ``stop``; idempotent."""
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self._thread = threading.Thread(target=self._loop, name="bn-lab-runner", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - a bad pass must not kill the scheduler
                print(f"bn-lab runner: {type(exc).__name__}: {exc}", file=sys.stderr)
            self._wake.wait(self.poll_interval)
            self._wake.clear()


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs and is not a zombie (os.kill(pid, 0) alone says yes to zombies)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True  # no /proc (macOS): trust kill(0)


def _is_worker(pid: int) -> bool:
    """Whether ``pid``'s command line is ``... -m bn_core.runs.worker ...`` (True without /proc)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"bn_core.runs.worker" in fh.read().split(b"\0")
    except FileNotFoundError:
        return not os.path.isdir("/proc")  # no such process, unless there is no /proc at all
    except OSError:
        return True


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
