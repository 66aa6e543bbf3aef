"""One training run in its own process: ``python -m bn_core.runs.worker RUN_ID``.

The worker reads the run's config from the store (``$BN_LAB_HOME``), trains it, and writes
every event back: batch and epoch metrics (and probes, when the config asks for them) as
they come, a heartbeat, and the final status.
It stops cooperatively when the run's cancel flag is set or on SIGTERM, keeping what was
measured. Anything that goes wrong ends the run as ``failed`` with a one-line message.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from bn_core.runs import artifacts
from bn_core.runs.store import RunStore

HEARTBEAT_SECONDS = 1.0  # also how often the cancel flag is read


def run_worker(run_id: int, store: RunStore) -> str:
    """Train run ``run_id``; returns its final status (or "skipped" if it was not ours)."""
    now = time.time()
    if not store.transition(
        run_id, ("queued", "starting"), "running", pid=os.getpid(), started_at=now, heartbeat=now
    ):
        return "skipped"  # cancelled before it started, or another worker has it
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    done = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(store, run_id, stop, done), daemon=True)
    beat.start()

    status, fields = "failed", {}
    try:
        from bn_core.nn.training import train  # TensorFlow loads here, in the worker only

        run = store.get(run_id)
        result = train(
            run.config,
            on_event=lambda event: record_event(store, run_id, event),
            should_stop=stop.is_set,
        )
        if result.model is not None and result.status in ("completed", "cancelled"):
            artifacts.save_model(result.model, store.model_path(run_id))  # for replay studies
        status = result.status
        fields = {
            "error": result.error,
            "test_loss": result.test_loss,
            "test_accuracy": result.test_accuracy,
        }
    except Exception as exc:  # noqa: BLE001 - config, data or TF errors: the run failed
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        fields = {"error": message}
    finally:
        done.set()
    store.transition(run_id, ("running",), status, finished_at=time.time(), **fields)
    return status


def record_event(store: RunStore, run_id: int, event: dict) -> None:
    """Write one training event of run ``run_id`` into the store (``end`` is handled by the
    caller, with the final status)."""
    kind = event["type"]
    if kind == "start":
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


def _heartbeat(store: RunStore, run_id: int, stop: threading.Event, done: threading.Event):
    while not done.wait(HEARTBEAT_SECONDS):
        store.update(run_id, heartbeat=time.time())
        if store.cancel_requested(run_id):
            stop.set()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m bn_core.runs.worker RUN_ID", file=sys.stderr)
        return 2
    status = run_worker(int(args[0]), RunStore())
    print(f"run {args[0]}: {status}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
