"""What the probes (bn_core.nn.probes) cost: training with probes off vs on, in one process.

    .venv/bin/python bench/bench_probes.py [--epochs 4] [--train-limit 20000] [--repeats 3]
                                           [--probe-every K] [--out bench/RESULTS_probes.md]

Real Fashion-MNIST, lenet_fc_bn2 (BN at every site: the most probe work per step, and the
variant the page compares), batch 64, Adam, sigmoid, the default 9,000 validation images.
Events are written to a throw-away run store, as a worker does. Each run trains ``--epochs``
epochs; the first (XLA compilation of the step, tracing of the probe functions) is excluded.
Two measurements:

1. In-run accounting (the number to trust on a shared machine): in every "on" run the time
   spent inside the probe callback is clocked, epoch by epoch, and compared with the rest of
   the same epoch, so load that drifts between runs cancels out.
     train overhead  probe seconds / (training part of the epoch - probe seconds)
     epoch overhead  (probe + mode-gap seconds) / (whole epoch - those seconds); the whole
                     epoch includes Keras' validation pass, so this is what a user waits for
2. A/B: runs alternate off, on, off, on, ... and the median throughputs are compared
   (training images / training part, and / whole epoch). On a quiet machine this agrees
   with (1) and also catches indirect costs (caches, threads); on a loaded 2-core VM its
   run-to-run spread (see min-max) is larger than the effect. The "probe time taken out"
   row shows whether probes slow the training steps themselves (it would then stay below
   "probes off").
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import keras
import tensorflow as tf

from bn_core import data
from bn_core.config import TrainConfig
from bn_core.constants import MODE_GAP_SIZE, PROBE_EVERY_DEFAULT, PROBE_SIZE
from bn_core.nn import probes
from bn_core.nn.training import train
from bn_core.runs.execution.recording import record_event
from bn_core.runs.store.run_store import RunStore


class _Clock:
    """Seconds spent in the probe callback's probes and mode gaps, per epoch (0-based)."""

    def __init__(self):
        self.probe: dict[int, float] = {}
        self.gap: dict[int, float] = {}

    def wrap(self, method, bucket: str, epoch_of):
        def timed(callback, *args, **kwargs):
            start = time.perf_counter()
            try:
                return method(callback, *args, **kwargs)
            finally:
                table = getattr(self, bucket)
                epoch = epoch_of(callback, args)
                table[epoch] = table.get(epoch, 0.0) + time.perf_counter() - start

        return timed


def one_run(splits, config: TrainConfig, store: RunStore) -> dict[str, list[float]]:
    """Per-epoch throughputs of one run, its probe steps and (probes on) per-epoch overheads.
    Events go into a run store as the worker writes them, so the overheads include that."""
    epoch_seconds, probe_steps = [], []
    run_id = store.create_run(config, "bench")

    def sink(event):
        record_event(store, run_id, event)
        if event["type"] == "epoch":
            epoch_seconds.append(event["epoch_seconds"])
        elif event["type"] == "probe":
            probe_steps.append(event["step"])

    clock = _Clock()
    callback = probes.ProbeCallback
    originals = callback._emit_probe, callback.on_epoch_end
    callback._emit_probe = clock.wrap(originals[0], "probe", lambda cb, args: cb.epoch)
    callback.on_epoch_end = clock.wrap(originals[1], "gap", lambda cb, args: args[0])
    try:
        result = train(config, on_event=sink, splits=splits)
    finally:
        callback._emit_probe, callback.on_epoch_end = originals
    assert result.status == "completed", result.error
    images = len(splits.x_train) // config.batch_size * config.batch_size
    train_seconds = result.history["seconds"]
    out = {
        "train": result.history["images_per_second"],
        "epoch": [images / s for s in epoch_seconds],
        "probes": probe_steps,
        "train_overhead": [],
        "epoch_overhead": [],
        "train_minus_probes": [],
        "probe_ms": [],
        "gap_ms": [],
    }
    if config.probe_every:
        for e, (train_s, epoch_s) in enumerate(zip(train_seconds, epoch_seconds, strict=True)):
            probe_s, gap_s = clock.probe.get(e, 0.0), clock.gap.get(e, 0.0)
            out["train_overhead"].append(probe_s / (train_s - probe_s))
            out["train_minus_probes"].append(images / (train_s - probe_s))
            out["epoch_overhead"].append((probe_s + gap_s) / (epoch_s - probe_s - gap_s))
            n = sum(1 for s in probe_steps if e * (images // 64) < s <= (e + 1) * (images // 64))
            out["probe_ms"].append(1000 * probe_s / max(n, 1))
            out["gap_ms"].append(1000 * gap_s)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run (first excluded)")
    parser.add_argument("--train-limit", type=int, default=20000, help="training images")
    parser.add_argument("--repeats", type=int, default=3, help="(off, on) pairs")
    parser.add_argument(
        "--probe-every", type=int, default=PROBE_EVERY_DEFAULT, help="k of the 'on' runs"
    )
    parser.add_argument("--out", default=None, help="also write the markdown table here")
    args = parser.parse_args()

    splits = data.load("fashion_mnist", train_limit=args.train_limit, seed=0)
    base = TrainConfig(
        variant="lenet_fc_bn2",
        dataset="fashion_mnist",
        epochs=args.epochs,
        seed=0,
        train_limit=args.train_limit,
    )
    on_name = f"probes on (k={args.probe_every})"
    configs = {"probes off": base, on_name: base.replace(probe_every=args.probe_every)}
    kinds = (
        "train",
        "epoch",
        "train_overhead",
        "epoch_overhead",
        "probe_ms",
        "gap_ms",
        "train_minus_probes",
    )
    samples = {name: {k: [] for k in kinds} for name in configs}
    started = time.perf_counter()
    probes_per_run = 0
    store = RunStore(tempfile.mkdtemp(prefix="bench-probes-"))
    for _ in range(args.repeats):
        for name, config in configs.items():
            run = one_run(splits, config, store)
            for kind in kinds:
                samples[name][kind].extend(run[kind][1:])  # drop the compile epoch
            probes_per_run = max(probes_per_run, len(run["probes"]))
            print(
                f"{name}: train "
                + ", ".join(f"{v:.0f}" for v in run["train"])
                + " | epoch "
                + ", ".join(f"{v:.0f}" for v in run["epoch"])
                + " | overhead "
                + ", ".join(f"{100 * v:.1f}%" for v in run["epoch_overhead"]),
                file=sys.stderr,
            )

    def spread(values, scale=1.0, fmt=",.0f"):
        median = statistics.median(values) * scale
        low, high = min(values) * scale, max(values) * scale
        return f"{median:{fmt}} ({low:{fmt}}–{high:{fmt}})"

    steps = len(splits.x_train) // base.batch_size
    on = samples[on_name]
    off = samples["probes off"]
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"(load average at the end {os.getloadavg()[0]:.1f}), TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}. lenet_fc_bn2 on Fashion-MNIST, {len(splits.x_train)} "
        f"training images ({steps} steps of 64 per epoch), {len(splits.x_val)} validation "
        f"images, {args.epochs} epochs (first excluded) x {args.repeats} alternating pair(s); "
        f"probe batch {PROBE_SIZE} images, mode gap on {MODE_GAP_SIZE} validation images, "
        f"{probes_per_run} probes per run (step 0 included); "
        f"{time.perf_counter() - started:.0f} s in all.",
        "",
        "In-run accounting (median over epochs, min–max):",
        "",
        "| k | one probe | mode gap per epoch | train overhead | epoch overhead |",
        "|---:|---:|---:|---:|---:|",
        f"| {args.probe_every} | {spread(on['probe_ms'], fmt='.0f')} ms "
        f"| {spread(on['gap_ms'], fmt='.0f')} ms "
        f"| {spread(on['train_overhead'], 100, '.1f')}% "
        f"| {spread(on['epoch_overhead'], 100, '.1f')}% |",
        "",
        "A/B (median throughput over epochs, min–max):",
        "",
        "| configuration | train img/s | epoch img/s |",
        "|---|---:|---:|",
        f"| probes off | {spread(off['train'])} | {spread(off['epoch'])} |",
        f"| {on_name} | {spread(on['train'])} | {spread(on['epoch'])} |",
        f"| {on_name}, probe time taken out | {spread(on['train_minus_probes'])} | |",
        "",
        f"A/B difference of the medians: "
        f"{100 * (1 - statistics.median(on['train']) / statistics.median(off['train'])):.1f}% "
        f"(train), "
        f"{100 * (1 - statistics.median(on['epoch']) / statistics.median(off['epoch'])):.1f}% "
        f"(epoch).",
    ]
    shutil.rmtree(store.home, ignore_errors=True)
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            command = " ".join(["bench/bench_probes.py", *sys.argv[1:]])
            fh.write(f"# Probe overhead\n\n`.venv/bin/python {command}`\n\n{text}\n")


if __name__ == "__main__":
    main()
