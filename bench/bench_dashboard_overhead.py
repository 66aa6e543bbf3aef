"""Is training launched from the dashboard slower than the same run from the CLI?

    .venv/bin/python bench/bench_dashboard_overhead.py [--epochs 4] [--train-limit N] [--repeats 2]

The dashboard path is exactly what the Train page does: ``JobRunner.submit`` -> a worker
process (``python -m bn_core.runs.execution.worker``) that streams every batch/epoch event into the
SQLite run store. The CLI path is ``python -m bn_core train --json`` in a subprocess.
Both train the same config on Fashion-MNIST; the two paths alternate, ``--repeats`` times.

Reported per path: median training images/s over the epochs after the first (compile
warm-up excluded), and the median wall time from launch to the final status (process
start, TF import, data loading and test evaluation included).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bn_core.config import TrainConfig
from bn_core.runs.execution.runner import JobRunner
from bn_core.runs.store.run_store import RunStore

ROOT = Path(__file__).resolve().parent.parent


def via_cli(config: TrainConfig) -> tuple[list[float], float]:
    flags = []
    for key, value in config.to_dict().items():
        if value is not None:
            flags += ["--" + key.replace("_", "-"), str(value)]
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "bn_core", "train", *flags, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    return json.loads(out.stdout)["history"]["images_per_second"], wall


def via_dashboard(config: TrainConfig, home: Path) -> tuple[list[float], float]:
    store = RunStore(home)
    runner = JobRunner(store, max_concurrent=1, poll_interval=0.2)
    start = time.perf_counter()
    (run_id,) = runner.submit([config])
    try:
        (run,) = runner.wait([run_id], poll=0.2)
    finally:
        runner.stop()
    wall = time.perf_counter() - start
    assert run.status == "completed", run.error
    return [e["images_per_second"] for e in store.epoch_metrics([run_id])], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-limit", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    config = TrainConfig(
        variant="lenet_fc_bn2",
        dataset="fashion_mnist",
        epochs=args.epochs,
        train_limit=args.train_limit,
    )
    ips = {"cli": [], "dashboard": []}
    walls = {"cli": [], "dashboard": []}
    with tempfile.TemporaryDirectory() as home:
        for i in range(args.repeats):
            for path in ("cli", "dashboard"):
                if path == "cli":
                    per_epoch, wall = via_cli(config)
                else:
                    per_epoch, wall = via_dashboard(config, Path(home) / f"store{i}")
                ips[path] += per_epoch[1:]
                walls[path].append(wall)
                print(
                    f"{path}: {', '.join(f'{v:.0f}' for v in per_epoch)} img/s, {wall:.1f} s",
                    file=sys.stderr,
                )
    med = {p: statistics.median(v) for p, v in ips.items()}
    wall_med = {p: statistics.median(v) for p, v in walls.items()}
    print(
        f"lenet_fc_bn2, Fashion-MNIST, {args.train_limit} training images, {args.epochs} "
        f"epochs (first excluded), {args.repeats} alternating repeats, {os.cpu_count()} cores\n"
    )
    print("| path | median img/s | median wall s (launch to final status) |")
    print("|---|---:|---:|")
    for p in ("cli", "dashboard"):
        print(f"| {p} | {med[p]:,.0f} | {wall_med[p]:.1f} |")
    print(
        f"\ndashboard / cli throughput: {med['dashboard'] / med['cli']:.3f}; "
        f"wall-time ratio: {wall_med['dashboard'] / wall_med['cli']:.3f}"
    )


if __name__ == "__main__":
    main()
