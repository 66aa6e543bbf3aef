"""Recording a run's events in the store: what a local worker does as it trains, and what
the Ray backend's relay does on the head for a run that trains on a cluster node
(``bn_core.runs.execution.backends.ray_backend``): one code path, so a run's rows are the same
wherever it ran.

``record_event`` writes one engine event, ``Resumed`` keeps a resumed run's history single,
``heartbeat`` beats the run's heartbeat in a thread (and notices a cancel, or a lost run),
``finish`` writes its end, retrying while the store cannot be written (a full disk).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time

from bn_core.runs.store.errors import StoreError
from bn_core.runs.store.run_store import RunStore

HEARTBEAT_SECONDS = 1.0  # also how often the cancel flag is read
RETRY_SECONDS = 1.0  # how often a run's end is retried while the store cannot be written


def record_event(store: RunStore, run_id: int, event: dict) -> None:
    """Write one training event of run ``run_id`` into the store (``end`` is handled by the
    caller, with the final status)."""
    kind = event["type"]
    if kind == "stage":
        store.update(run_id, stage=event["stage"])
    elif kind == "start":
        store.update(
            run_id,
            steps_per_epoch=event["steps_per_epoch"],
            total_steps=event["total_steps"],
            data_source=event["data_source"],
        )
    elif kind == "batch":
        store.add_batch(run_id, event)
    elif kind == "epoch":
        store.add_epoch(run_id, event)
    elif kind == "probe":
        store.add_probe(run_id, event)
    elif kind == "mode_gap":
        store.add_mode_gap(run_id, event)


class Resumed:
    """Keeps a resumed run's history a single history: on the engine's ``resume`` event
    (k epochs, s steps restored from the checkpoint) it deletes what the run recorded after
    them; a run queued ``again`` that starts with no checkpoint loses all it recorded before
    its first new batch. (Rows re-recorded replace their old selves anyway; these are the
    ones the new attempt might never reach.)"""

    def __init__(self, store: RunStore, run_id: int, again: bool):
        self.store, self.run_id, self.pending = store, run_id, again

    def on_event(self, event: dict) -> None:
        if not self.pending:
            return
        if event["type"] == "resume":
            self.store.truncate_metrics(self.run_id, event["epoch"], event["step"])
            self.store.update(self.run_id, stage=f"resuming after epoch {event['epoch']}")
            self.pending = False
        elif event["type"] in ("batch", "epoch", "probe", "mode_gap"):
            self.store.truncate_metrics(self.run_id, 0, 0)  # no checkpoint: it starts over
            self.pending = False


def finish(store: RunStore, run_id: int, status: str, fields: dict, holder: str) -> None:
    """Record the run's end, retrying while the store cannot be written (a full disk): the
    runner holds back judging heartbeats meanwhile (``JobRunner``), so this process, which
    knows why, writes the end once space allows."""
    said = False
    while True:
        try:
            store.transition(
                run_id, ("running",), status, held_by=holder, finished_at=time.time(), **fields
            )
            return
        except StoreError as exc:
            if exc.kind not in ("full", "io"):  # waiting will not fix it: the log says why
                print(f"run {run_id}: {exc}", file=sys.stderr)
                return
            if not said:
                with contextlib.suppress(OSError):  # the log is on the full disk too
                    print(
                        f"run {run_id}: {exc}; retrying every {RETRY_SECONDS:g} s", file=sys.stderr
                    )
                said = True
            time.sleep(RETRY_SECONDS)


@contextlib.contextmanager
def heartbeat(store: RunStore, run_id: int, holder: str, stop: threading.Event | None = None):
    """Refresh run ``run_id``'s heartbeat every ``HEARTBEAT_SECONDS`` while the block runs,
    in a thread, as long as ``holder`` (an owner string) owns it; set ``stop`` once its cancel
    flag is set (the dashboard's Cancel) or once the run is no longer ``holder``'s (judged
    dead by a runner, and perhaps resumed by another worker: this one must stop writing)."""
    done = threading.Event()
    args = (store, run_id, holder, stop or threading.Event(), done)
    threading.Thread(target=_heartbeat, args=args, daemon=True).start()
    try:
        yield
    finally:
        done.set()


def _heartbeat(
    store: RunStore, run_id: int, holder: str, stop: threading.Event, done: threading.Event
):
    while not done.wait(HEARTBEAT_SECONDS):
        try:
            if not store.beat(run_id, holder) or store.cancel_requested(run_id):
                stop.set()
        except StoreError:  # the training thread meets it too, at its next event, and ends
            pass
