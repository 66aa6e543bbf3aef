"""What runs on a Ray node: one training run, its events yielded to the head as they happen.

``train_events`` is the body of the Ray task that ``ray_backend`` starts for a run (a
streaming generator: every ``yield`` reaches the head's relay at once). It touches no store
and no dataset file: it gets the run's config, the dataset as read on the head (a Ray object,
put there once per dataset) and the run's checkpoint, if any, as bytes; it sends back

- ``{"type": "node", "node": HOSTNAME, "node_id": ID}`` first (where it runs);
- every event of ``bn_core.nn.training.train`` (stage, start, resume, batch, epoch, probe,
  mode_gap, end), as the local worker records them, each with ``sent`` (its wall-clock time);
- ``{"type": "checkpoint", "data": BYTES}`` once the engine has written an epoch's checkpoint
  (``bn_core.nn.checkpoint``, 0.75-2.2 MB), so a run resumes on any node, or locally;
- ``{"type": "model", "data": BYTES}`` (the ``.keras`` file) after a completed or cancelled run;
- ``{"type": "done", "status": ..., "error": ..., "test_loss": ..., "test_accuracy": ...,
  "images_per_second": ...}`` last.

Training runs in a thread of the task, so events stream while Keras trains; the task's main
thread forwards them. Cancel is cooperative first: ``should_stop`` reads a flag that a poller
thread fetches from the head's ``Cancels`` actor every ``POLL_SECONDS``. TensorFlow's thread
pools are sized to the CPUs the task asked Ray for, before TensorFlow starts (each task runs in
a fresh worker process: ``max_calls=1`` in ``ray_backend``), so two runs on one node do not
fight over its cores. Importing this module imports neither Ray nor TensorFlow.
"""

from __future__ import annotations

import os
import queue
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bn_core.messages import one_line
from bn_core.vocabulary import Event, RunStatus

POLL_SECONDS = 1.0  # how often a task asks the head whether its run was cancelled
_DONE = object()  # the training thread's last item on the queue


def train_events(
    run_id: int,
    config_dict: dict[str, Any],
    raw: Any,
    checkpoint: bytes | None,
    cancels: Any,
    num_cpus: int,
    token: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Train run ``run_id`` (``config_dict``) on ``raw`` (``bn_core.data.RawData``), starting
    from ``checkpoint`` (bytes of a checkpoint file) if given; yield its events (module doc).
    ``cancels``: the head's ``Cancels`` actor handle (None: never cancelled), asked about
    ``token`` (this attempt of the run: a flag set for an earlier attempt never stops it)."""
    import ray

    yield {
        "type": Event.NODE,
        "node": socket.gethostname(),
        "node_id": ray.get_runtime_context().get_node_id(),
    }
    _limit_threads(num_cpus)
    from bn_core.runs.execution.worker import LIVE_EVENTS_PER_EPOCH, use_xla_cache

    use_xla_cache(Path(tempfile.gettempdir()) / "bn-lab-ray")  # this node's compiled steps
    from bn_core.config import TrainConfig
    from bn_core.data import prepare
    from bn_core.nn.checkpoint import CheckpointError
    from bn_core.nn.training import EngineOptions, train  # TensorFlow loads here

    config = TrainConfig.from_dict(config_dict)
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix=f"bn-lab-run-{run_id}-") as folder:
        path = Path(folder) / "checkpoint.npz"
        if checkpoint:
            path.write_bytes(checkpoint)
        poller = threading.Thread(
            target=_poll_cancel, args=(cancels, token or str(run_id), stop), daemon=True
        )
        poller.start()

        def work() -> None:
            options = EngineOptions(min_events_per_epoch=LIVE_EVENTS_PER_EPOCH)
            try:
                splits = prepare(
                    raw, val_size=config.val_size, train_limit=config.train_limit, seed=config.seed
                )
                args = (config, events.put, stop.is_set)
                kwargs = {"splits": splits, "checkpoint": path, "options": options}
                try:
                    result = train(*args, **kwargs)
                except CheckpointError as exc:  # damaged, or another config's: start over
                    path.unlink(missing_ok=True)
                    events.put({"type": Event.STAGE, "stage": f"starting over: {exc}"})
                    events.put({"type": Event.RESTART})
                    result = train(*args, **kwargs)
                events.put({"type": "_result", "result": result})
            except Exception as exc:  # noqa: BLE001 - the run failed: say why, in one line
                events.put({"type": "_failed", "error": one_line(exc)})
            finally:
                events.put(_DONE)

        trainer = threading.Thread(target=work, name=f"bn-lab-run-{run_id}", daemon=True)
        trainer.start()
        stamp, _ = _changed(path, None)  # the checkpoint it resumes from needs no sending back
        while (event := events.get()) is not _DONE:
            kind = event["type"]
            if kind == "_result":
                yield from _ending(event["result"], path)
                continue
            if kind == "_failed":
                yield {"type": Event.DONE, "status": RunStatus.FAILED, "error": event["error"]}
                continue
            yield {**event, "sent": time.time()}  # the relay measures how late it arrives
            # The engine writes an epoch's checkpoint (atomically) just after its epoch event:
            # the next event after it, whatever its kind, finds the new file and sends it.
            stamp, data = _changed(path, stamp)
            if data is not None:
                yield {"type": Event.CHECKPOINT, "data": data}
        stop.set()  # ends the poller
        trainer.join()


def _changed(path: Path, stamp: tuple | None) -> tuple[tuple | None, bytes | None]:
    """(the file's stamp, its bytes if it changed since ``stamp``, else None)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return stamp, None
    now = (info.st_mtime_ns, info.st_size, info.st_ino)
    return (now, path.read_bytes()) if now != stamp else (stamp, None)


def _ending(result: Any, path: Path) -> Iterator[dict[str, Any]]:
    """The events after ``train`` returned: the latest checkpoint of a run that can still go
    on (not ``SETTLED``: the head keeps it to resume from), its model when the head's
    ``recording.end_run`` will save one (``REPLAYABLE``), and ``done``."""
    from bn_core.vocabulary import REPLAYABLE, SETTLED

    if result.status not in SETTLED and path.exists():
        yield {"type": Event.CHECKPOINT, "data": path.read_bytes()}
    if result.model is not None and result.status in REPLAYABLE:
        from bn_core.runs.store.artifacts import save_model

        model_path = path.with_name("model.keras")
        save_model(result.model, model_path)
        yield {"type": Event.MODEL, "data": model_path.read_bytes()}
    yield {
        "type": Event.DONE,
        "status": result.status,
        "error": result.error,
        "test_loss": result.test_loss,
        "test_accuracy": result.test_accuracy,
        "images_per_second": result.images_per_second,
    }


def _poll_cancel(cancels: Any, token: str, stop: threading.Event) -> None:
    """Set ``stop`` once the head's ``Cancels`` actor says ``token`` was cancelled."""
    if cancels is None:
        return
    import ray

    while not stop.wait(POLL_SECONDS):
        try:
            if ray.get(cancels.cancelled.remote(token), timeout=10):
                stop.set()
        except Exception as exc:  # noqa: BLE001 - the head is gone: Ray ends this task anyway
            print(f"{token}: cannot reach the head's cancel flags: {exc}", file=sys.stderr)
            time.sleep(POLL_SECONDS)


def _limit_threads(num_cpus: int) -> None:
    """Size TensorFlow's (and OpenMP's) thread pools to the CPUs Ray gave this task; must run
    before TensorFlow starts (a fresh worker process: ``max_calls=1``)."""
    n = str(max(1, int(num_cpus)))
    for name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        os.environ[name] = n
    os.environ["TF_NUM_INTEROP_THREADS"] = n if int(n) > 1 else "2"
