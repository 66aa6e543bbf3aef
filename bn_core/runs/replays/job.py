"""Replay a stored run: load its saved model, re-estimate BN's inference statistics from the
batches it recorded (``bn_core.nn.replay``), and write ``replays/run-ID.json``.

Runs in its own process (``python -m bn_core.runs.replays.job RUN_ID``, started by the job
runner for a queued replay, or ``python -m bn_core replay RUN_ID`` by hand): TensorFlow is
imported only once a replay really runs, so the error paths answer at once. Once the run is
known to be replayable, the job keeps a progress file for the page (``replays.write_progress``:
loading the model, loading the test set, replaying choice i of n, writing the result) and
removes it when it ends, whatever the outcome.

The process holds the run's replay job (``bn_core.runs.store.replay_queue``) while it works: it
takes it first (``running``, its owner and pid; if another live process has it, it leaves at
once), beats its heartbeat every ``HEARTBEAT_SECONDS``, and ends it ``done`` or ``failed`` with
the same one-line error it prints. Should even that write fail, the runner fails the job once
this process is gone, with the log's last line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from bn_core import data
from bn_core.constants import DEFAULT_WINDOWS, EMA_MOMENTUM, EPOCH
from bn_core.messages import one_line
from bn_core.nn.replay import ReplayError, history_layers, load_model, replay  # no TF yet
from bn_core.runs.replays import files as replays
from bn_core.runs.store import owner
from bn_core.runs.store.errors import StoreError
from bn_core.runs.store.run_store import RunRecord, RunStore
from bn_core.vocabulary import ReplayStatus

HEARTBEAT_SECONDS = 1.0  # as a run's worker: the runner's stale_after is many of these


def replay_run(
    run_id: int, store: RunStore, windows: Sequence[int | str] = DEFAULT_WINDOWS
) -> Path:
    """Replay run ``run_id`` of ``store`` and write its replay file; returns the file's path.

    The run's own ``window_size`` is always among the windows, so the file shows the
    trained model's own choice (and the replay reproduces its test accuracy there).
    """
    started = time.perf_counter()
    run = store.get(run_id)
    if run is None:
        raise ReplayError(f"run {run_id} does not exist in the store at {store.home}")
    model_path = store.model_path(run_id)
    problem = replays.replay_problem(run, model_path.is_file())
    if problem:
        raise ReplayError(problem)

    progress_path = replays.replay_progress_path(store.home, run_id)
    try:
        return _replay(run, store, windows, started, progress_path)
    finally:
        progress_path.unlink(missing_ok=True)


def _replay(
    run: RunRecord,
    store: RunStore,
    windows: Sequence[int | str],
    started: float,
    progress_path: Path,
) -> Path:
    """``replay_run`` once the run is known to be replayable, reporting its stages."""
    config = run.config
    replays.write_progress(progress_path, "loading the model (TensorFlow)")
    model = load_model(store.model_path(run.id))  # TensorFlow loads here, not before the checks
    try:
        layer = history_layers(model)[0]
    except ReplayError as exc:
        raise ReplayError(f"run #{run.id}: {exc}") from None
    k = len(layer.recorded_batches()[0])
    replays.write_progress(progress_path, "loading the test set")
    # The official test set is the same whatever the split: convert only it (and 1 train row).
    test = data.prepare(data.load_raw(config.dataset, config.data_dir), val_size=0, train_limit=1)
    ints = [w for w in windows if w != EPOCH]
    asked = [*sorted({*ints, config.window_size}), *([EPOCH] if EPOCH in windows else [])]
    # One choice per call (each its own window, then the EMA), so progress can be told between
    # them; every call sets and restores the layers' statistics, so the rows are those of one
    # call over all the choices.
    choices = [*([w] for w in asked), []]
    rows = []
    for i, choice in enumerate(choices):
        stage = f"replaying choice {i + 1} of {len(choices)}"
        replays.write_progress(progress_path, stage, i, len(choices))
        ema = None if choice else EMA_MOMENTUM
        rows += replay(model, test.x_test, test.y_test, choice, ema_momentum=ema)
    replays.write_progress(progress_path, "writing the result", len(choices), len(choices))
    payload = {
        "run_id": run.id,
        "variant": run.variant,
        "dataset": config.dataset,
        "trained_window": config.window_size,
        "trained_test_accuracy": run.test_accuracy,
        "recorded_batches": k,
        "epoch_batches": layer.history_size,
        "ema_momentum": EMA_MOMENTUM,
        "ema_start_weight": EMA_MOMENTUM**k,
        "windows": rows,
        "created": time.time(),
        "seconds": time.perf_counter() - started,
    }
    path = replays.replay_path(store.home, run.id)
    replays.write_replay(path, payload)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # ASCII digits (isdecimal alone takes "١٢"), and an id SQLite can look up (< 2**63)
    ok = len(args) == 1 and args[0].isascii() and args[0].isdecimal() and len(args[0]) <= 19
    if not ok or not 0 < int(args[0]) < 2**63:
        print("usage: python -m bn_core replay RUN_ID", file=sys.stderr)
        return 2
    run_id, me = int(args[0]), owner.current()
    held, error = False, "interrupted before it ended"  # the job's error if an interrupt ends it
    try:
        store = RunStore(verify=False)  # its runner has checked the store's pages
        held = store.take_replay(run_id, me, os.getpid())  # None: no such run, said below
        if held is False:
            print(f"replay: run {run_id} is being replayed by another process", file=sys.stderr)
            return 1
        with _heartbeat(store, run_id, me) if held else contextlib.nullcontext():
            path = replay_run(run_id, store)
        error = None
    except Exception as exc:  # noqa: BLE001 - any failure is one line for the page or a shell
        # Our own errors say what went wrong; anything else also needs its type to.
        detail = one_line(exc, typed=not isinstance(exc, (ReplayError, data.DatasetError)))
        error = detail
        print(f"replay: {detail}", file=sys.stderr)
        return 1
    finally:
        if held:
            _finish(store, run_id, me, error)
    print(f"run {run_id}: replay written to {path}")
    return 0


@contextlib.contextmanager
def _heartbeat(store: RunStore, run_id: int, me: str) -> Iterator[None]:
    """Refresh the job's heartbeat every ``HEARTBEAT_SECONDS`` while the block runs (in a
    thread: loading TensorFlow and replaying hold the main one for long stretches)."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(StoreError):  # the end is written (or judged) later
                store.replay_heartbeat(run_id, me)

    threading.Thread(target=beat, name="replay-heartbeat", daemon=True).start()
    try:
        yield
    finally:
        done.set()


def _finish(store: RunStore, run_id: int, me: str, error: str | None) -> None:
    """End the job ``done`` (no ``error``) or ``failed``; if the store refuses, say so: the
    runner fails the job from the log once this process has gone."""
    try:
        status = ReplayStatus.FAILED if error else ReplayStatus.DONE
        store.finish_replay(run_id, status, error, owner=me)
    except StoreError as exc:
        print(f"replay: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
