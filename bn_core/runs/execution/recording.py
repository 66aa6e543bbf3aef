"""Recording a run in the store, the one way for every run wherever it trained: a local
worker (``worker``), a Ray task through its relay on the head (``backends.ray_relay``), and
so ``bn-lab study``, whose runs are queued runs like any other. A run's rows, files and end
are therefore the same wherever it ran (a test trains one run each way and compares them).

``record_event`` writes one engine event, ``Resumed`` keeps a resumed run's history single,
``heartbeat`` beats the run's heartbeat in a thread (and notices a cancel, or a lost run),
``end_run`` records how an attempt ended (``Outcome``): the trained model saved, the
checkpoint removed when nothing is left to resume, and the final status with its test
metrics and speed, written by ``finish``, which retries while the store cannot be written
(a full disk) and only while the caller still owns the run.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bn_core.messages import one_line
from bn_core.runs.store.errors import StoreError, describe
from bn_core.runs.store.run_store import RunStore
from bn_core.vocabulary import METRIC_EVENTS, REPLAYABLE, SETTLED, Event, RunStatus, Stage

HEARTBEAT_SECONDS = 1.0  # also how often the cancel flag is read
RETRY_SECONDS = 1.0  # how often a run's end is retried while the store cannot be written
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)  # the OS saying the disk (or the quota) is full


@dataclass
class Outcome:
    """How one attempt of a run ended, as ``end_run`` records it.

    ``write_model(path)`` writes the trained model to ``path`` atomically (a Keras model
    saved here, or the bytes a Ray task sent); it is called only for ``REPLAYABLE`` statuses.
    """

    status: RunStatus
    error: str | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None
    images_per_second: float | None = None  # this attempt's own steps (TrainResult's)
    write_model: Callable[[Path], None] | None = None

    def __post_init__(self) -> None:
        self.status = RunStatus.parse(self.status)

    @classmethod
    def of_result(cls, result: Any, write_model: Callable[[Path], None] | None = None):
        """The outcome of ``bn_core.nn.training.train``'s ``TrainResult``."""
        return cls(
            status=result.status,
            error=result.error,
            test_loss=result.test_loss,
            test_accuracy=result.test_accuracy,
            images_per_second=result.images_per_second,
            write_model=write_model,
        )

    @classmethod
    def failed(cls, exc: BaseException | str, store: RunStore | None = None) -> Outcome:
        """A failed attempt, its error in one line; an OSError of a full disk is said as the
        store says it (``describe("full", ...)``), wherever it was met."""
        if isinstance(exc, OSError) and exc.errno in NO_SPACE and store is not None:
            return cls(RunStatus.FAILED, describe("full", store.path))
        return cls(RunStatus.FAILED, exc if isinstance(exc, str) else one_line(exc))

    def on_this_disk(self, store: RunStore) -> Outcome:
        """This outcome, with an engine error that is the OS saying the disk is full said as
        the store says it: for an attempt that trained on the store's machine (its checkpoint
        is on that disk). A Ray node's full disk is the node's, and keeps its own words."""
        if self.status == RunStatus.FAILED and self.error and _no_space(self.error):
            self.error = describe("full", store.path)
        return self

    def fields(self) -> dict[str, Any]:
        """The run's columns this outcome fills."""
        fields: dict[str, Any] = {
            "error": self.error,
            "test_loss": self.test_loss,
            "test_accuracy": self.test_accuracy,
        }
        if self.images_per_second is not None:  # a run that never stepped keeps an older one
            fields["images_per_second"] = self.images_per_second
        return fields


def end_run(store: RunStore, run_id: int, holder: str, outcome: Outcome) -> RunStatus:
    """Record the end of run ``run_id``'s attempt held by ``holder`` (an owner string): save
    its model (``REPLAYABLE`` statuses, so window replay can load it), remove its checkpoint
    when nothing is left to resume (``SETTLED``), then write its status, error, test metrics
    and speed (``finish``: retried while the store cannot be written; nothing is written once
    another attempt owns the run). Returns the status recorded. Call it inside ``heartbeat``,
    so a run whose end waits for disk space is not taken for a dead one."""
    status, fields = outcome.status, outcome.fields()
    try:
        # The run's files are touched only while this attempt still has the run: a stale
        # attempt (judged dead, the run resumed elsewhere) must not delete the new attempt's
        # checkpoint or replace its model.
        if store.beat(run_id, holder):
            if outcome.write_model is not None and status in REPLAYABLE:
                store.update(run_id, stage=Stage.SAVING)
                outcome.write_model(store.model_path(run_id))
            if status in SETTLED:
                store.checkpoint_path(run_id).unlink(missing_ok=True)
    except StoreError as exc:  # the stage could not be written: the end says why
        status, fields = RunStatus.FAILED, {"error": str(exc)}
    except OSError as exc:  # writing the model file
        failed = Outcome.failed(exc, store)
        if failed.error == one_line(exc):
            failed.error = f"could not save its model: {failed.error}"
        status, fields = failed.status, failed.fields()
    except Exception as exc:  # noqa: BLE001 - Keras refusing to save, a locked store: the
        # run still ends, failed, saying why, never left running for a runner to call lost
        status, fields = RunStatus.FAILED, {"error": f"could not save its model: {one_line(exc)}"}
    finish(store, run_id, status, fields, holder)
    return status


def _no_space(error: str) -> bool:
    """Whether an error message is the OS saying the disk (or the quota) is full."""
    return any(f"[Errno {code}]" in error for code in NO_SPACE)


def record_event(store: RunStore, run_id: int, event: dict) -> None:
    """Write one training event of run ``run_id`` into the store (``end`` is handled by the
    caller, with the final status)."""
    kind = event["type"]
    if kind == Event.STAGE:
        store.update(run_id, stage=event["stage"])
    elif kind == Event.START:
        store.update(
            run_id,
            steps_per_epoch=event["steps_per_epoch"],
            total_steps=event["total_steps"],
            data_source=event["data_source"],
        )
    elif kind == Event.BATCH:
        store.add_batch(run_id, event)
    elif kind == Event.EPOCH:
        store.add_epoch(run_id, event)
    elif kind == Event.PROBE:
        store.add_probe(run_id, event)
    elif kind == Event.MODE_GAP:
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
        if event["type"] == Event.RESUME:
            self.store.truncate_metrics(self.run_id, event["epoch"], event["step"])
            self.store.update(self.run_id, stage=f"resuming after epoch {event['epoch']}")
            self.pending = False
        elif event["type"] in METRIC_EVENTS:
            self.store.truncate_metrics(self.run_id, 0, 0)  # no checkpoint: it starts over
            self.pending = False


def finish(store: RunStore, run_id: int, status: str, fields: dict, holder: str) -> None:
    """Write the run's end (``running`` -> ``status`` with ``fields``, only while ``holder``
    owns it), retrying while the store cannot be written (a full disk): the runner holds back
    judging heartbeats meanwhile (``JobRunner``), so this process, which knows why, writes
    the end once space allows. ``end_run`` is the one caller a training run needs."""
    said = False
    while True:
        try:
            store.transition(
                run_id,
                (RunStatus.RUNNING,),
                status,
                held_by=holder,
                finished_at=time.time(),
                **fields,
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
        except (StoreError, sqlite3.OperationalError):  # a full disk, a locked store: the
            pass  # training thread meets it too at its next event; the next beat may pass
