"""Start -> first live point: ``JobRunner.submit`` (what the Train page's Start button calls) to
the first batch metric stored by the worker, for a quick run, median over repeats.

    .venv/bin/python bench/bench_first_point.py [--repeats 5] [--variant lenet_fc_bn2]

The runner is started once, as the dashboard's server does, and left idle for ``--settle``
seconds before each submit (a server that has been up a while: a standby worker, if the
backend keeps one, is ready by then). Each run is quick (Fashion-MNIST, 5,000 training
images, 1,000 validation images, batch 64) and is cancelled once its first point is stored;
``--finish`` lets it run to the end instead, to time the later stages too.

While it waits the script polls the store every 20 ms and notes when each status and stage
first appears, so the table says where the time went. The first point's time is the batch
row's own ``t`` (written by the worker), not the poll's. Works on stores without a ``stage``
column too (then only statuses are timed).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

from bn_core.config import TrainConfig
from bn_core.runs.execution.runner import JobRunner
from bn_core.runs.store.run_store import RunStore

POLL = 0.02  # seconds between store reads while a run starts


def quick_config(variant: str, seed: int, data_dir: str | None, epochs: int) -> TrainConfig:
    return TrainConfig(
        variant=variant,
        dataset="fashion_mnist",
        data_dir=data_dir,
        epochs=epochs,
        batch_size=64,
        train_limit=5000,
        val_size=1000,
        seed=seed,
    )


def wait_idle(runner: JobRunner, settle: float) -> None:
    """Until no run is active, then ``settle`` seconds (the server sits idle a while)."""
    while runner.store.list_runs(("queued", "starting", "running")):
        time.sleep(0.2)
    time.sleep(settle)


def one_run(runner: JobRunner, config: TrainConfig, finish: bool) -> dict[str, float]:
    """Seconds from submit to each status/stage first seen, and to the first stored point."""
    store = runner.store
    t0 = time.time()
    (run_id,) = runner.submit([config])
    seen: dict[str, float] = {}
    first_point = None
    while True:
        run = store.get(run_id)
        label = run.status
        stage = getattr(run, "stage", None)
        if stage and run.status == "running":
            label = f"running: {stage}"
        seen.setdefault(label, time.time() - t0)
        if first_point is None:
            rows = store.batch_metrics([run_id])
            if rows:
                first_point = rows[0]["t"] - t0
                if not finish:
                    runner.cancel(run_id)
        if not run.active:
            break
        time.sleep(POLL)
    if run.status not in ("completed", "cancelled"):
        raise SystemExit(f"run {run_id} ended {run.status}: {run.error}")
    seen["first point"] = first_point if first_point is not None else float("nan")
    seen["end"] = (run.finished_at or time.time()) - t0
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs to time (default 5)")
    parser.add_argument("--variant", default="lenet_fc_bn2", help="default lenet_fc_bn2")
    parser.add_argument(
        "--settle", type=float, default=20.0, help="idle seconds before each submit (default 20)"
    )
    parser.add_argument("--data-dir", default=None, help="default: search the usual places")
    parser.add_argument(
        "--finish", action="store_true", help="let each run (1 epoch) finish instead of cancel"
    )
    parser.add_argument("--home", default=None, help="store folder (default: a temporary one)")
    args = parser.parse_args(argv)

    home = args.home or tempfile.mkdtemp(prefix="bench-first-point-")
    runner = JobRunner(RunStore(home), max_concurrent=1).start()
    results = []
    try:
        for i in range(args.repeats):
            wait_idle(runner, args.settle)
            config = quick_config(args.variant, i, args.data_dir, epochs=1 if args.finish else 2)
            seen = one_run(runner, config, args.finish)
            results.append(seen)
            steps = ", ".join(f"{k} {v:.1f}" for k, v in seen.items())
            print(f"repeat {i + 1}: {steps}", file=sys.stderr, flush=True)
    finally:
        runner.stop()
        backend_close = getattr(runner.backend, "close", None)
        if backend_close is not None:
            backend_close()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average at the end "
        f"{load:.1f}. {args.variant}, Fashion-MNIST, 5,000 training / 1,000 validation images, "
        f"batch 64; {args.repeats} runs, {args.settle:g} s idle before each.\n"
    )
    print("| seconds after submit (first seen) | median | min–max |")
    print("|---|---:|---:|")
    labels = list(dict.fromkeys(k for seen in results for k in seen))
    for label in labels:
        values = [seen[label] for seen in results if label in seen]
        print(
            f"| {label} ({len(values)}/{len(results)}) | {statistics.median(values):.1f} | "
            f"{min(values):.1f}–{max(values):.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
