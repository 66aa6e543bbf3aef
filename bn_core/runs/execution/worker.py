"""One training run in its own process: ``python -m bn_core.runs.execution.worker RUN_ID``.

The worker reads the run's config from the store (``$BN_LAB_HOME``), trains it, and writes
every event back: batch and epoch metrics (and probes, when the config asks for them) as
they come, the run's stage (``runs.stage``: starting, then the engine's stages, then saving
the model), a heartbeat, and the final status.
It stops cooperatively when the run's cancel flag is set or on SIGTERM, keeping what was
measured. Anything that goes wrong ends the run as ``failed`` with a one-line message.

When the store cannot be written (disk full, I/O error), training stops at the next event it
cannot record, and the worker keeps trying to write the run's end (``failed``, with the
reason: "disk full (N MB free in ...)") every ``RETRY_SECONDS`` until it can: the cause is
recorded as soon as space allows, never replaced by "worker process exited".

``python -m bn_core.runs.execution.worker --standby`` is the same worker started ahead of its
run (by ``backends.local``): it imports TensorFlow and the engine and reads the datasets found
on this machine (the run still splits its own, by its seed), then waits for one run id on its
standard input, trains that run as above and exits. One run per process, so nothing of a run
outlives it; if its input closes first (the server went away) it exits without a run.

Workers share XLA's persistent compilation cache (``$BN_LAB_HOME/xla-cache/<machine>``, about
1 MB per distinct model and batch shape; safe to delete; ``BN_LAB_XLA_CACHE=0`` turns it off):
a run with the same variant and shapes as an earlier one loads its compiled steps instead of
compiling them again (the same program, so the same numbers). XLA checks each loaded entry
against the program it was asked to compile; the folder is per CPU model and TensorFlow
version, since machine code compiled for one CPU may not run on another. TensorFlow logs an
"Error parsing text-format" line for each entry it loads (it tries the text format first).
(Over 300 lines: claiming, training, recording, resuming and ending a run under a full disk
are one story, and the XLA cache helpers are the worker's alone.)
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import platform
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from bn_core import settings
from bn_core.constants import DATASETS
from bn_core.runs.execution.recording import Outcome, Resumed, end_run, heartbeat, record_event
from bn_core.runs.store import artifacts, owner
from bn_core.runs.store.errors import StoreError
from bn_core.runs.store.run_store import RunStore
from bn_core.vocabulary import RunStatus, Stage

# Batch events an epoch at least (EngineOptions.min_events_per_epoch): a quick run's 78-step
# epochs get a live point every 4 steps instead of 3 points an epoch; full runs keep 32.
LIVE_EVENTS_PER_EPOCH = 16
STANDBY = "--standby"


def run_worker(run_id: int, store: RunStore) -> str:
    """Train run ``run_id``; returns its final status (or "skipped" if it was not ours)."""
    now, me = time.time(), owner.current()
    if not store.transition(
        run_id,
        (RunStatus.QUEUED, RunStatus.STARTING),
        RunStatus.RUNNING,
        pid=os.getpid(),
        started_at=now,
        heartbeat=now,
        stage=Stage.STARTING,
        owner=me,
        node=socket.gethostname(),  # the machine that runs it, for the Runs table
    ):
        return "skipped"  # cancelled before it started, or another worker has it
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    # The heartbeat goes on while the end is retried (a full disk): the runner must not take
    # a worker that is waiting to write why it failed for a dead one.
    with heartbeat(store, run_id, me, stop):
        return end_run(store, run_id, me, _train(store, run_id, stop))


def _train(store: RunStore, run_id: int, stop: threading.Event) -> Outcome:
    """Train the run, recording its events as they come; returns how it ended (a store that
    could not record an event ends it ``failed``, saying why)."""
    trouble: list[StoreError] = []
    checkpoint = store.checkpoint_path(run_id)
    try:
        run = store.get(run_id)
        if run is None:  # its row is damaged (bn_core.runs.store.records.DamagedRun)
            return Outcome.failed(
                f"run #{run_id} is damaged in the store: its config cannot be read"
            )
        resumed = Resumed(store, run_id, again=run.resumes > 0)

        def on_event(event: dict) -> None:
            try:
                resumed.on_event(event)
                record_event(store, run_id, event)
            except StoreError as exc:  # stop training: what it measures could not be kept
                trouble.append(exc)
                stop.set()
                raise

        from bn_core.nn.checkpoint import CheckpointError
        from bn_core.nn.training import EngineOptions, train  # TensorFlow loads here (or has)

        def attempt():
            options = EngineOptions(min_events_per_epoch=LIVE_EVENTS_PER_EPOCH)
            return train(run.config, on_event, stop.is_set, checkpoint=checkpoint, options=options)

        try:
            result = attempt()
        except CheckpointError as exc:  # damaged, or of another config: start over, say why
            print(f"run {run_id}: {exc}; starting over", file=sys.stderr)
            checkpoint.unlink(missing_ok=True)
            resumed.pending = True  # what a half-done restore kept goes too
            store.update(run_id, stage=f"starting over: {exc}")
            result = attempt()
    except StoreError as exc:  # reading the run or writing its stage: the end says why
        return Outcome.failed(str(exc))
    except Exception as exc:  # noqa: BLE001 - config, data or TF errors: the run failed
        return Outcome.failed(exc, store)
    if trouble:
        return Outcome.failed(str(trouble[0]))
    model = result.model
    save = None if model is None else (lambda path: artifacts.save_model(model, path))
    return Outcome.of_result(result, write_model=save).on_this_disk(store)


def standby(store: RunStore, lines: TextIO | None = None) -> str:
    """Import the engine while waiting for one line on ``lines`` (default stdin): a run id,
    whose run it then trains; returns the run's final status, or "no run" if the input ends
    or holds no run id.

    The import (and ``nn.training.preload`` of the datasets found here) runs in a thread,
    so a run handed over early is claimed at once, its heartbeats flowing while the import
    finishes (``run_worker``'s own import of the engine waits for it), just as a worker
    started for the run claims it before importing.
    """
    loading = threading.Thread(target=_import_engine, daemon=True)
    loading.start()
    line = (lines or sys.stdin).readline().strip()
    if not (line.isdecimal() and line.isascii()):
        loading.join()  # leave no import half done behind at exit
        return "no run"
    run_id = int(line)
    _log_to(store.log_path(run_id))
    status = run_worker(run_id, store)
    print(f"run {run_id}: {status}", file=sys.stderr)
    return status


def _import_engine() -> None:
    """TensorFlow and the engine, then the datasets this machine has (read, not yet split)."""
    from bn_core.nn import training  # TensorFlow loads here, before any run is given

    for dataset in DATASETS:
        training.preload(dataset)


def _log_to(path) -> None:
    """Send this process's stdout and stderr (TensorFlow's native output too) to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)


def xla_cache_folder(home: Path) -> Path:
    """``home/xla-cache/<CPU architecture>-<TensorFlow version>-<hash of the CPU's features>``."""
    flags = platform.processor()
    with contextlib.suppress(OSError):  # Linux: what the CPU can do, e.g. avx512f
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), flags)
    version = "unknown"
    for dist in ("tensorflow", "tensorflow-cpu"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            version = importlib.metadata.version(dist)
            break
    digest = hashlib.sha256(flags.encode()).hexdigest()[:12]
    return home / "xla-cache" / f"{platform.machine()}-tf{version}-{digest}"


def use_xla_cache(home: Path) -> None:
    """Point XLA's persistent cache at ``xla_cache_folder(home)``; call it before TensorFlow
    compiles anything. Leaves a cache the environment already sets alone; ``$BN_LAB_XLA_CACHE``
    off (0/false/no/off) turns it off (anything but a switch word is a SettingError)."""
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if not settings.value("BN_LAB_XLA_CACHE") or "persistent_cache_directory" in flags:
        return
    folder = xla_cache_folder(home.resolve())
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={folder}".strip()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == [STANDBY]:
        store = RunStore(verify=False)  # the runner that starts workers has checked its pages
        use_xla_cache(store.home)
        standby(store)
        return 0
    if len(args) != 1 or not args[0].isdigit():
        print(
            f"usage: python -m bn_core.runs.execution.worker RUN_ID (or {STANDBY})", file=sys.stderr
        )
        return 2
    store = RunStore(verify=False)
    use_xla_cache(store.home)
    status = run_worker(int(args[0]), store)
    print(f"run {args[0]}: {status}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
