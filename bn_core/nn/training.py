"""The training engine: one function that trains a variant and streams what it measures.
(Over 300 lines: the run, its event stream, its checkpoints and their callbacks belong together.)

``train(config, on_event, should_stop)`` builds the model, feeds it through a tf.data
pipeline and Keras' ``fit`` (XLA-compiled, several steps per call), and reports:

- events to ``on_event`` (plain JSON-safe dicts whose ``type`` is one of
  ``bn_core.vocabulary.ENGINE_EVENTS``) while it runs,
- a ``TrainResult`` at the end, with a status of ``completed``, ``cancelled``,
  ``diverged`` or ``failed`` (``ENGINE_ENDS``) and everything measured up to that point.

Diverged, as a number (the one place the rule lives: every backend and ``bn-lab train`` run
this function, so they all agree):

- at a batch event, a training loss (Keras' running mean over the epoch so far) that is not
  finite, or above ``BLOWN_UP_LOSS`` (1e4: far past the epoch bar below; it stops at once);
- at an epoch's end, a validation loss that is not finite, or a training loss of the epoch
  above ``EXPLODED_LOSS`` = ``EXPLODING_FACTOR`` (10) x ln(10) = 23.03: ten times the loss a
  network that knows nothing starts at (a uniform guess over 10 classes). The whole epoch's
  mean is judged, not a batch event's, so how often events come (32 steps per call in
  ``train``, finer in a worker) never changes the outcome, and a healthy run's noisy first
  batches cannot trip it: healthy epochs measured at most 1.01x ln(10), single batches of
  aggressive runs that did not explode up to 12.8x (docs/RELIABILITY.md).

Resuming: the shuffle is a pure function of (seed, epoch) (``bn_core.nn.batches``) and
nothing else in a training step draws a random number, so with ``checkpoint=PATH``
(``bn_core.nn.checkpoint``) a run killed after epoch k and started again continues at epoch
k + 1 exactly as if it had never stopped: same batches, same state, same numbers. It emits
``resume`` (epochs and steps done) right after ``start``; its later events carry the epoch
and step numbers of the uninterrupted run, so a consumer drops whatever it recorded after
that step (a partly trained epoch is trained again). The file is rewritten at every epoch
end; the caller deletes it once the run has ended (a completed run's checkpoint still loads:
resuming it only evaluates on the test set again).

Bad input (an invalid config, a missing dataset) raises ``ConfigError``/``DatasetError``
before anything starts; a failure during training becomes ``status="failed"``.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from bn_core import data as data_lib
from bn_core.config import OUTPUT_SIZE, TrainConfig
from bn_core.data.search import files_stamp
from bn_core.messages import one_line
from bn_core.nn import checkpoint as ckpt
from bn_core.nn.batches import TrainBatches, eval_dataset
from bn_core.nn.model import build_model
from bn_core.nn.probes import Probe, ProbeCallback
from bn_core.results import HISTORY_KEYS, TrainResult, finite
from bn_core.vocabulary import Event, RunStatus, Stage

tf.get_logger().setLevel("ERROR")  # a new run re-traces Keras' step; TF warns about it each time

# "Exploding", as a number. A cross-entropy over OUTPUT_SIZE classes starts near ln(10) = 2.303,
# the loss of a uniform guess (fresh networks start within 7% of it, measured). An epoch whose
# training loss is over EXPLODING_FACTOR times that (23.03: the right class gets ~1e-10 of
# the probability on average) has exploded, NaN or not: Adam at learning rate 10 gives epochs
# of 339 to 1014 on the tests' toy data, 276 to 484 on Fashion-MNIST. Healthy epochs stay
# under 1.01x ln(10); single batches of a run at 30x its default rate reach 12.8x (batch 4).
EXPLODING_FACTOR = 10
START_LOSS = math.log(OUTPUT_SIZE)  # ln(10): what the bar is a multiple of
EXPLODED_LOSS = EXPLODING_FACTOR * START_LOSS  # an epoch's training loss above it: diverged
BLOWN_UP_LOSS = 1e4  # a running mean above it at any batch event: diverged at once
_OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}

EventDict = dict[str, Any]  # one event: its ``type`` (an ``Event``) and its values


@dataclass(frozen=True)
class EngineOptions:
    """How to run, not what to learn: these never change the maths, only the speed."""

    jit_compile: bool = True  # XLA-compile the train step (measured faster in bench/)
    steps_per_execution: int = 32  # train steps per call into TF; events come this often
    # At least this many batch events an epoch (0: off): a short epoch (a quick run's 78
    # steps) then gets finer executions, so its live curve has points, not three dots.
    min_events_per_epoch: int = 0

    def __post_init__(self):
        if self.steps_per_execution < 1 or self.min_events_per_epoch < 0:
            raise ValueError(
                "steps_per_execution must be >= 1 and min_events_per_epoch >= 0. Received: "
                f"{self.steps_per_execution} and {self.min_events_per_epoch}"
            )

    def execution_steps(self, steps_per_epoch: int) -> int:
        """Train steps per call into TF for epochs of ``steps_per_epoch`` steps:
        ``steps_per_execution``, or with ``min_events_per_epoch`` = k > 0 the smaller
        clamp(steps_per_epoch // k, 1, steps_per_execution), which gives at least k calls (and
        batch events) an epoch whenever the epoch has k steps or more."""
        if self.min_events_per_epoch == 0:
            return self.steps_per_execution
        return max(1, min(steps_per_epoch // self.min_events_per_epoch, self.steps_per_execution))


class _Stop(Exception):
    """Raised from a callback to leave ``fit`` at once with a final status."""

    def __init__(self, status: str, message: str | None = None):
        super().__init__(message or status)
        self.status = status
        self.message = message


def train(
    config: TrainConfig,
    on_event: Callable[[EventDict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    splits: data_lib.Splits | None = None,
    options: EngineOptions = EngineOptions(),
    checkpoint: str | os.PathLike | None = None,
) -> TrainResult:
    """Train ``config.variant`` and return what was measured.

    ``on_event`` receives ``start``, ``batch`` (every ``options.execution_steps`` steps:
    running epoch means of loss and accuracy, as Keras reports them), ``epoch`` and ``end`` events;
    with ``config.probe_every`` > 0 also ``probe`` and ``mode_gap`` (``bn_core.nn.probes``);
    ``stage`` events as each of ``ENGINE_STAGES`` begins (``loading data`` only without
    ``splits``).
    ``should_stop`` is polled with each batch event and after each epoch; when it returns
    True the run ends as ``cancelled``, keeping the completed epochs. ``splits`` lets a caller
    reuse already-loaded data (it must come from the same dataset settings).

    ``checkpoint``: a file written (atomically) at every epoch end that does not end the run
    as diverged; if it exists when the run starts, the run continues from it and emits
    ``{"type": "resume", "epoch": k, "step": s}`` (k epochs, s steps done) right after
    ``start``; ``TrainResult.history`` and ``steps`` then count the epochs before it too
    (``seconds`` only this process's part).
    A damaged checkpoint, or one of another run (``bn_core.nn.checkpoint.fingerprint``),
    raises ``CheckpointError`` before any event; one whose variables do not fit the model
    (only if the model's code changed) raises it while compiling, before any step.
    """
    config.validate()
    emit = on_event or (lambda event: None)
    if splits is None:
        emit(_stage(Stage.LOADING))
        splits = _load(config)
    steps_per_epoch = len(splits.x_train) // config.batch_size
    if steps_per_epoch < 1:
        raise data_lib.DatasetError(
            f"batch_size {config.batch_size} is larger than the {len(splits.x_train)} training "
            "images; lower --batch-size or raise --train-limit"
        )

    fingerprint = ckpt.fingerprint(config, splits) if checkpoint is not None else None
    saved = None
    if checkpoint is not None and Path(checkpoint).exists():
        saved = ckpt.load(checkpoint, fingerprint, config.epochs)

    started = time.perf_counter()
    emit(_start_event(config, splits, steps_per_epoch))
    if saved is not None:
        emit({"type": Event.RESUME, "epoch": saved.epoch, "step": saved.step})
    emit(_stage(Stage.COMPILING))
    model = _compiled_model(config, steps_per_epoch, options)
    result = TrainResult(status=RunStatus.COMPLETED, config=config, model=model)
    first_epoch = 0
    if saved is not None:
        ckpt.restore(saved, model, Path(checkpoint).name)
        result.history, first_epoch = saved.history, saved.epoch
        result.resumed_steps = saved.step
    stream = _Stream(config, steps_per_epoch, emit, should_stop, result, first_epoch)
    if checkpoint is not None:
        stream.save = lambda epochs_done: ckpt.save(
            checkpoint,
            model,
            fingerprint=fingerprint,
            epoch=epochs_done,
            step=stream.steps_done,
            history=result.history,
        )
    batches = TrainBatches(splits.x_train, splits.y_train, config.batch_size, config.seed)
    callbacks = [batches, stream]
    if config.probe_every > 0:
        # First, so that an epoch's mode gap is emitted even when the stream then ends the run.
        args = (config.probe_every, steps_per_epoch, config.batch_size, splits, emit)
        probes = _ResumedProbes(saved.step, *args) if saved else ProbeCallback(*args)
        callbacks.insert(0, probes)
    result.status, result.error = _fit(model, config, splits, batches, callbacks, first_epoch)
    if result.status == RunStatus.COMPLETED:
        emit(_stage(Stage.EVALUATING))
        loss, acc = model.evaluate(eval_dataset(splits.x_test, splits.y_test), verbose=0)
        result.test_loss, result.test_accuracy = float(loss), float(acc)
    result.steps = stream.steps_done
    result.seconds = time.perf_counter() - started
    emit({"type": Event.END, **result.to_dict()})
    return result


def _stage(name: Stage) -> EventDict:
    return {"type": Event.STAGE, "stage": name}


def preload(dataset: str) -> None:
    """Read ``dataset``'s files now if they are on this machine (a standby worker does while
    it waits for its run): the next run of it, on the same unchanged files, skips reading."""
    with contextlib.suppress(data_lib.DatasetError):  # if so, the run will say what is wrong
        if (hit := data_lib.locate(dataset)) is not None:
            stamp = files_stamp(hit)  # before reading: a file changed meanwhile reads again
            _preloaded[dataset] = (stamp, data_lib.load_raw(dataset, allow_download=False))


_preloaded: dict[str, tuple[tuple, data_lib.RawData]] = {}  # dataset -> (files_stamp, data)


def _load(config: TrainConfig) -> data_lib.Splits:
    split = {"val_size": config.val_size, "train_limit": config.train_limit, "seed": config.seed}
    stamp, raw = _preloaded.pop(config.dataset, (None, None))  # used once: free it after
    hit = data_lib.locate(config.dataset) if raw is not None and not config.data_dir else None
    if hit is not None and files_stamp(hit) == stamp:
        return data_lib.prepare(raw, **split)
    return data_lib.load(config.dataset, config.data_dir, **split)


def _compiled_model(config: TrainConfig, steps_per_epoch: int, options: EngineOptions):
    """A fresh, seeded model of ``config.variant``, compiled with its optimizer and loss, its
    optimizer and metric variables already built (none is created inside the traced step)."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)  # weights, dropout-free ops, Python/NumPy RNGs
    model = build_model(
        config.variant,
        activation=config.activation,
        epsilon=config.epsilon,
        window_size=config.window_size,
        # One epoch of BN batch statistics, so the window can be replayed after training.
        history_size=steps_per_epoch,
    )
    optimizer = _OPTIMIZERS[config.optimizer](learning_rate=config.effective_learning_rate)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),  # model gives logits
        # What "accuracy" becomes for integer labels, as an object: its variables exist now.
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=options.jit_compile,
        steps_per_execution=options.execution_steps(steps_per_epoch),
    )
    optimizer.build(model.trainable_variables)  # its slots (Adam's m and v), zeros, made here
    return model


def _start_event(config: TrainConfig, splits: data_lib.Splits, steps_per_epoch: int) -> EventDict:
    return {
        "type": Event.START,
        "variant": config.variant,
        "config": config.to_dict(),
        "data_source": splits.source,
        "n_train": len(splits.x_train),
        "n_val": len(splits.x_val),
        "n_test": len(splits.x_test),
        "steps_per_epoch": steps_per_epoch,
        "total_steps": steps_per_epoch * config.epochs,
    }


def _fit(model, config: TrainConfig, splits, batches, callbacks: list, first_epoch: int):
    """``model.fit`` from epoch ``first_epoch`` on; returns (status, error message or None)."""
    has_val = len(splits.x_val) > 0
    try:
        model.fit(
            batches.dataset,
            initial_epoch=first_epoch,
            epochs=config.epochs,
            validation_data=eval_dataset(splits.x_val, splits.y_val) if has_val else None,
            callbacks=callbacks,
            shuffle=False,  # the dataset shuffles itself, by (seed, epoch)
            verbose=0,
        )
    except _Stop as stop:
        return stop.status, stop.message
    except Exception as exc:  # noqa: BLE001 - any crash inside TF becomes a failed run
        return RunStatus.FAILED, one_line(exc, typed=True)
    return RunStatus.COMPLETED, None


class _Stream(keras.callbacks.Callback):
    """Turns Keras' callback hooks into events, times epochs, and stops on request or NaN."""

    def __init__(self, config, steps_per_epoch, emit, should_stop, result, first_epoch=0):
        super().__init__()
        self.config, self.steps_per_epoch = config, steps_per_epoch
        self.emit, self.should_stop, self.result = emit, should_stop or (lambda: False), result
        self.epoch, self.epoch_start, self.train_seconds = first_epoch, 0.0, None
        self.steps_done = first_epoch * steps_per_epoch
        self.stage = Stage.COMPILING
        self.save: Callable[[int], None] | None = None  # writes the checkpoint, if any

    def _enter(self, stage: Stage) -> None:
        self.stage = stage
        self.emit(_stage(stage))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.epoch_start, self.train_seconds = epoch, time.perf_counter(), None

    def on_train_batch_end(self, batch, logs=None):
        if self.stage != Stage.TRAINING:  # an epoch's first event: compiling/validating is over
            self._enter(Stage.TRAINING)
        # Keras reports begin + steps_per_execution - 1, even when the epoch ended sooner.
        batch = min(batch, self.steps_per_epoch - 1)
        loss, acc = float(logs["loss"]), float(logs["accuracy"])
        self.steps_done = self.epoch * self.steps_per_epoch + batch + 1
        self.emit(
            {
                "type": Event.BATCH,
                "epoch": self.epoch + 1,
                "batch": batch + 1,
                "step": self.steps_done,
                "epoch_progress": self.epoch + (batch + 1) / self.steps_per_epoch,
                "loss": finite(loss),
                "accuracy": finite(acc),
            }
        )
        if not math.isfinite(loss) or loss > BLOWN_UP_LOSS:
            problem = f"training loss reached {loss:.4g} at step {self.steps_done}"
            raise _Stop(RunStatus.DIVERGED, problem)
        if self.should_stop():
            raise _Stop(RunStatus.CANCELLED, f"cancelled at step {self.steps_done}")

    def on_test_begin(self, logs=None):
        # Validation starts: the training part of the epoch is over.
        self.train_seconds = time.perf_counter() - self.epoch_start
        self._enter(Stage.VALIDATING)

    def on_epoch_end(self, epoch, logs=None):
        seconds = self.train_seconds or (time.perf_counter() - self.epoch_start)
        images = self.steps_per_epoch * self.config.batch_size
        row = {
            "loss": float(logs["loss"]),
            "accuracy": float(logs["accuracy"]),
            "val_loss": float(logs.get("val_loss", math.nan)),
            "val_accuracy": float(logs.get("val_accuracy", math.nan)),
            "seconds": seconds,
            "images_per_second": images / seconds,
        }
        for key in HISTORY_KEYS:
            self.result.history[key].append(row[key])
        self.emit(
            {
                "type": Event.EPOCH,
                "epoch": epoch + 1,
                "step": self.steps_done,
                "epoch_seconds": time.perf_counter() - self.epoch_start,
                **{k: finite(v) for k, v in row.items()},
            }
        )
        if "val_loss" in logs and not math.isfinite(row["val_loss"]):
            problem = f"validation loss became {row['val_loss']} after epoch {epoch + 1}"
            raise _Stop(RunStatus.DIVERGED, problem)
        if row["loss"] > EXPLODED_LOSS:  # finite: a NaN running mean stopped it already
            problem = (
                f"training loss of epoch {epoch + 1} was {row['loss']:.4g}, over "
                f"{EXPLODING_FACTOR} x ln({OUTPUT_SIZE}) = {EXPLODED_LOSS:.2f}: exploded"
            )
            raise _Stop(RunStatus.DIVERGED, problem)
        if self.save is not None:
            self.save(epoch + 1)
        if self.should_stop() and epoch + 1 < self.config.epochs:
            raise _Stop(RunStatus.CANCELLED, f"cancelled after epoch {epoch + 1}")


class _ResumedProbes(ProbeCallback):
    """``ProbeCallback`` for a run resumed after ``start_step`` steps. The uninterrupted run
    took its step-0 probe long ago; after any step t its next probe is due at the first
    multiple of ``probe_every`` above t (each probe at step p sets it to the first multiple
    above p, and none was due in (p, t]), so the schedule continues from there."""

    def __init__(self, start_step: int, *args):
        super().__init__(*args)
        self.start_step = int(start_step)

    def on_train_begin(self, logs=None):
        self.probe = Probe(self.model, self.x, self.y, self.batch_size)
        self.next_step = (self.start_step // self.probe_every + 1) * self.probe_every
