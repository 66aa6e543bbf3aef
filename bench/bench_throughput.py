"""Training throughput (images/s) of the engine against a plain Keras reference, in one run.

    .venv/bin/python bench/bench_throughput.py [--epochs 4] [--train-limit N] [--repeats 1]
    .venv/bin/python bench/bench_throughput.py --quick-events [--repeats 3]

Measured, on real Fashion-MNIST (batch 64, Adam, sigmoid, as the study):
  reference        lenet_keras_bn, ``model.compile()`` defaults, ``fit`` on numpy arrays
  engine/<variant> ``bn_core.nn.training.train`` (XLA, 32 steps per execution, tf.data)
  engine+events    lenet_fc_bn2 with every event JSON-encoded, as a UI/store sink would
  ablations        lenet_fc_bn2 without XLA, and with 1 step per execution

Each configuration trains ``--epochs`` epochs; the first (compilation, warm-up) is excluded
and the median of the others is reported, with ratios to the reference. Only the training
part of an epoch is timed (validation is off). Timings on a shared 2-core VM are noisy:
compare the ratios of one run, and rerun with ``--repeats`` to see the spread.

``--quick-events`` measures instead what the dashboard's live points cost a quick run (5,000
training images, 2 epochs, lenet_fc_bn2, every event JSON-encoded): the worker's
``min_events_per_epoch`` against 0 (one event every 32 steps), the second epoch's img/s of
each, the two alternating ``--repeats`` times so a change in the machine's load hits both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time

import keras
import tensorflow as tf

from bn_core import data
from bn_core.config import TrainConfig
from bn_core.nn.model import build_model
from bn_core.nn.training import EngineOptions, train
from bn_core.runs.execution.worker import LIVE_EVENTS_PER_EPOCH


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def reference(splits, epochs: int, batch_size: int, verbose: int | str = 0) -> list[float]:
    """The plain Keras way: default compile(), fit on numpy arrays (what a user writes first).

    ``verbose="auto"`` is fit's own default: a progress bar redrawn after every step (here
    written to /dev/null, so only its cost remains, not the terminal's)."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = build_model("lenet_keras_bn")
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    timer = _EpochTimer()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        model.fit(
            splits.x_train,
            splits.y_train,
            batch_size=batch_size,
            epochs=epochs,
            callbacks=[timer],
            verbose=verbose,
        )
    return [len(splits.x_train) / s for s in timer.seconds]


DEFAULT_OPTIONS = EngineOptions()


def engine(splits, config: TrainConfig, options=DEFAULT_OPTIONS, sink=None) -> list[float]:
    result = train(config, on_event=sink, splits=splits, options=options)
    assert result.status == "completed", result.error
    return result.history["images_per_second"]


def quick_events(repeats: int) -> None:
    """Median img/s of a quick run's second epoch, without and with the worker's live events."""
    limit = 5000
    splits = data.load("fashion_mnist", val_size=0, train_limit=limit, seed=0)
    config = TrainConfig(
        dataset="fashion_mnist", variant="lenet_fc_bn2", epochs=2, val_size=0, train_limit=limit
    )
    steps = len(splits.x_train) // config.batch_size
    options = {}
    for k in (0, LIVE_EVENTS_PER_EPOCH):
        opts = EngineOptions(min_events_per_epoch=k)
        options[f"min_events_per_epoch={k} ({opts.execution_steps(steps)} steps/execution)"] = opts
    samples: dict[str, list[float]] = {name: [] for name in options}
    for _ in range(repeats):
        for name, opts in options.items():
            per_epoch = engine(splits, config, opts, sink=json.dumps)  # as the worker's store
            samples[name].append(per_epoch[1])  # the first epoch compiles
            print(f"{name}: " + ", ".join(f"{v:.0f}" for v in per_epoch), file=sys.stderr)
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"TensorFlow {tf.__version__}; {len(splits.x_train)} training images, batch "
        f"{config.batch_size} ({steps} steps/epoch), second epoch x {repeats} repeat(s)\n"
    )
    print("| engine options | median img/s | min–max |")
    print("|---|---:|---:|")
    for name, values in samples.items():
        low, high = min(values), max(values)
        print(f"| {name} | {statistics.median(values):,.0f} | {low:,.0f}–{high:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per config (first excluded)")
    parser.add_argument("--train-limit", type=int, default=None, help="training images (all)")
    parser.add_argument(
        "--repeats", type=int, default=None, help="rounds over all configs (1; 3 --quick-events)"
    )
    parser.add_argument(
        "--quick-events", action="store_true", help="the cost of live events on a quick run"
    )
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    parser.add_argument(
        "--only", default=None, help="comma-separated substrings: run only matching configurations"
    )
    args = parser.parse_args()
    if args.quick_events:
        quick_events(args.repeats or 3)
        return
    args.repeats = args.repeats or 1

    splits = data.load("fashion_mnist", val_size=0, train_limit=args.train_limit, seed=0)
    base = TrainConfig(dataset="fashion_mnist", epochs=args.epochs, val_size=0, seed=0)
    encoded = []

    def json_sink(event):  # what a run store or UI does with each event
        encoded.append(json.dumps(event))

    configs = {
        "reference (lenet_keras_bn, default compile)": lambda: reference(
            splits, args.epochs, base.batch_size
        ),
        "reference, fit's default progress bar": lambda: reference(
            splits, args.epochs, base.batch_size, verbose="auto"
        ),
        "engine lenet": lambda: engine(splits, base.replace(variant="lenet")),
        "engine lenet_fc_bn2": lambda: engine(splits, base.replace(variant="lenet_fc_bn2")),
        "engine lenet_keras_bn": lambda: engine(splits, base.replace(variant="lenet_keras_bn")),
        "engine lenet_fc_bn2 + JSON event sink": lambda: engine(
            splits, base.replace(variant="lenet_fc_bn2"), sink=json_sink
        ),
        "lenet_fc_bn2, no XLA": lambda: engine(
            splits, base.replace(variant="lenet_fc_bn2"), EngineOptions(jit_compile=False)
        ),
        "lenet_fc_bn2, 1 step/execution": lambda: engine(
            splits, base.replace(variant="lenet_fc_bn2"), EngineOptions(steps_per_execution=1)
        ),
    }
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        first = next(iter(configs))  # the reference stays: every ratio is to it
        configs = {n: f for n, f in configs.items() if n == first or any(w in n for w in wanted)}
    samples: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.repeats):
        for name, run in configs.items():
            per_epoch = run()
            samples[name].extend(per_epoch[1:])  # drop the warm-up/compile epoch
            print(f"{name}: " + ", ".join(f"{v:.0f}" for v in per_epoch), file=sys.stderr)

    medians = {name: statistics.median(v) for name, v in samples.items()}
    ref = medians[next(iter(configs))]
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}; "
        f"{len(splits.x_train)} training images, batch 64, {args.epochs} epochs "
        f"(first excluded) x {args.repeats} repeat(s)\n"
    )
    print("| configuration | median img/s | min–max | × reference |")
    print("|---|---:|---:|---:|")
    for name, values in samples.items():
        print(
            f"| {name} | {medians[name]:,.0f} | {min(values):,.0f}–{max(values):,.0f} "
            f"| {medians[name] / ref:.2f} |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"samples": samples, "medians": medians}, fh, indent=2)


if __name__ == "__main__":
    main()
