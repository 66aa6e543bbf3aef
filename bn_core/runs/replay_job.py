"""Replay a stored run: load its saved model, re-estimate BN's inference statistics from the
batches it recorded (``bn_core.nn.replay``), and write ``replays/run-ID.json``.

Runs in its own process (``python -m bn_core.runs.replay_job RUN_ID``, started by
``bn_core.runs.replays.start_replay``, or ``python -m bn_core replay RUN_ID``): TensorFlow is
imported only once a replay really runs, so the error paths answer at once. Once the run is
known to be replayable, the job keeps a progress file for the page (``replays.write_progress``:
loading the model, loading the test set, replaying choice i of n, writing the result) and
removes it when it ends, whatever the outcome.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bn_core import data
from bn_core.constants import DEFAULT_WINDOWS, EMA_MOMENTUM, EPOCH
from bn_core.nn.replay import ReplayError, history_layers, load_model, replay  # no TF yet
from bn_core.runs import replays
from bn_core.runs.store import RunRecord, RunStore


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
    if len(args) != 1 or not args[0].isdecimal():
        print("usage: python -m bn_core replay RUN_ID", file=sys.stderr)
        return 2
    run_id = int(args[0])
    try:
        path = replay_run(run_id, RunStore())
    except Exception as exc:  # noqa: BLE001 - any failure is one line for the page or a shell
        detail = str(exc).splitlines()[0] if str(exc) else ""
        if not isinstance(exc, (ReplayError, data.DatasetError)):
            detail = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        print(f"replay: {detail}", file=sys.stderr)
        return 1
    print(f"run {run_id}: replay written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
