"""The job runner: a queue of runs, started as worker processes, at most N at a time.

The interface is backend-neutral: ``submit`` (configs -> queued runs in the store),
``cancel``, ``status``, and metrics flow into the store from wherever a run executes.
Backends live in ``bn_core.runs.backends``: ``LocalProcessBackend`` (the default, re-exported
here) runs each job as ``python -m bn_core.runs.worker RUN_ID`` in its own process session;
a distributed backend (Ray, say) implements the same four methods of ``Backend``.

When no run is active the runner calls the backend's ``prepare`` (if it has one): the local
backend then keeps a standby worker that has already imported TensorFlow, so the next run's
first point comes seconds sooner. ``submit`` wakes the scheduling thread at once.

Cancellation escalates: the run's cancel flag (the worker polls it and stops cleanly), then
SIGTERM after ``cancel_grace`` seconds, then SIGKILL after twice that. A run whose process
is gone, or whose heartbeat is older than ``stale_after``, becomes ``interrupted``; every
metric it recorded stays in the store.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid

from bn_core.config import TrainConfig
from bn_core.runs.backends import Backend
from bn_core.runs.backends.local import LocalProcessBackend
from bn_core.runs.store import RunRecord, RunStore

__all__ = ["Backend", "JobRunner", "LocalProcessBackend", "default_concurrency"]


def default_concurrency() -> int:
    """One run at a time on small machines (a run uses both cores of a 2-core box)."""
    env = os.environ.get("BN_LAB_MAX_CONCURRENT")
    if env and env.isdecimal() and env.isascii() and int(env) > 0:
        return int(env)
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
    ):
        self.store = store
        self.backend = backend or LocalProcessBackend(store)
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
        """Detect dead runs, escalate cancels, then start queued runs up to the limit; when
        nothing is active, let the backend get ready for the next run."""
        with self._lock:
            now = time.time()
            active = self.store.list_runs(("starting", "running"))
            for run in active:
                self._check(run, now)
            for run_id in set(self._cancel_since) - {run.id for run in active}:
                del self._cancel_since[run_id]  # ended on its own
            claimed = False
            while (run_id := self.store.claim_next(self.max_concurrent)) is not None:
                claimed = True
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
            prepare = getattr(self.backend, "prepare", None)
            if prepare is not None and not active and not claimed:
                prepare(self.store)

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
        """Stop scheduling (running workers go on) and close the backend's standby, if any."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        close = getattr(self.backend, "close", None)
        if close is not None:
            with self._lock:
                close()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - a bad pass must not kill the scheduler
                print(f"bn-lab runner: {type(exc).__name__}: {exc}", file=sys.stderr)
            self._wake.wait(self.poll_interval)
            self._wake.clear()
