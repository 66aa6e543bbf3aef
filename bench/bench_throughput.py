"""Training throughput (images/s) of the engine against a plain Keras reference, in one run.

    .venv/bin/python bench/bench_throughput.py [--epochs 4] [--train-limit N] [--repeats 1]

Measured, on real Fashion-MNIST (batch 64, Adam, sigmoid, as the study):
  reference        lenet_keras_bn, ``model.compile()`` defaults, ``fit`` on numpy arrays
  engine/<variant> ``bn_core.nn.training.train`` (XLA, 32 steps per execution, tf.data)
  engine+events    lenet_fc_bn2 with every event JSON-encoded, as a UI/store sink would
  ablations        lenet_fc_bn2 without XLA, and with 1 step per execution

Each configuration trains ``--epochs`` epochs; the first (compilation, warm-up) is excluded
and the median of the others is reported, with ratios to the reference. Only the training
part of an epoch is timed (validation is off). Timings on a shared 2-core VM are noisy:
compare the ratios of one run, and rerun with ``--repeats`` to see the spread.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per config (first excluded)")
    parser.add_argument("--train-limit", type=int, default=None, help="training images (all)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds over all configs")
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    parser.add_argument(
        "--only", default=None, help="comma-separated substrings: run only matching configurations"
    )
    args = parser.parse_args()

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
