"""A synthetic run store of many finished runs, for benchmarking the dashboard at scale.

    .venv/bin/python bench/synthetic_store.py HOME [--runs 5000] [--epochs 10] [--group-size 15]

Writes ``HOME/runs.sqlite`` as if the quick Original study (5 variants x 3 seeds, Fashion-MNIST,
5,000 training images, batch 64: 78 steps per epoch) had been run again and again over six
weeks: groups of ``group_size`` runs, one group after another, each run trained after the
previous one. Most runs completed; a few were cancelled part way or failed early. Every run has
what a real quick run records: one epoch row per epoch and a batch row every 3 steps (26 per
epoch), with loss falling and accuracy rising towards a test accuracy of ~0.85-0.89 (more BN
sites learn a little faster and end a little higher). No probes.

The schema comes from the real code (``RunStore(home)`` creates or migrates it); the rows are
then written with ``executemany`` in one transaction, so 5,000 runs (1.3 million batch rows)
take seconds. Only the columns of schema version 2 are written, so the generator works with
stores of every later version too; when the store has a ``groups`` table (version 3),
each group also gets a readable name. The same arguments give the same runs (``seed``), apart
from the timestamps, which end at the time of the build.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sqlite3
import time
from pathlib import Path

import numpy as np

from bn_core.analysis.study import get_preset, preset_configs
from bn_core.config import TrainConfig
from bn_core.runs.store.run_store import RunStore
from bn_core.runs.store.schema import transaction

PRESET = "original"
SEEDS = 3  # per variant: 5 variants x 3 seeds = a group of 15, as the Original study runs
DATASET = "fashion_mnist"
STEPS_PER_EPOCH = 78  # 5,000 images // batch 64
EVENT_EVERY = 3  # steps between two batch rows
SPAN_DAYS = 42.0  # the groups' creation times spread over the six weeks before the build
STATUS_SHARES = {"completed": 0.95, "cancelled": 0.035, "failed": 0.015}
DATA_SOURCE = "fashion_mnist from /usr/share/datasets/fashion-mnist (IDX files)"
FAILURE = "worker exited with code 1: MemoryError while loading the dataset"
RUN_COLUMNS = (  # columns of schema version 2 (the others keep their defaults)
    *("id", "group_id", "variant", "seed", "config_json", "status", "created_at", "started_at"),
    *("finished_at", "heartbeat", "cancel_requested", "error", "data_source", "steps_per_epoch"),
    *("total_steps", "test_loss", "test_accuracy", "resumes"),
)


def build(home: Path, n_runs: int, epochs: int = 10, group_size: int = 15, seed: int = 0) -> Path:
    """Write ``n_runs`` finished runs in groups of ``group_size`` into a new store in ``home``
    (created if missing; it must hold no runs yet); returns the store's path."""
    for name, value, low in (
        ("n_runs", n_runs, 1),
        ("epochs", epochs, 1),
        ("group_size", group_size, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(
                f"{name} must be a whole number of at least {low}. Received: {value!r}"
            )
    store = RunStore(home)  # the real code creates or migrates the schema
    with store.connect() as db:
        held = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        if held:
            raise ValueError(
                f"{store.path} already holds {held:,} runs; give a new folder. Received: {home}"
            )
        rng = np.random.default_rng(seed)
        runs, groups = _runs(n_runs, epochs, group_size, rng)
        curves = _curves(runs, epochs, rng)
        with transaction(db):
            _insert(db, runs, curves, groups)
    return store.path


def _runs(n_runs: int, epochs: int, group_size: int, rng: np.random.Generator):
    """The runs' rows (dicts) and the groups' (id, name, created_at), oldest first."""
    configs = [
        dataclasses.replace(c, epochs=epochs)
        for c in preset_configs(PRESET, quick=True, dataset=DATASET, seeds=SEEDS)
    ]
    preset = get_preset(PRESET)
    title, variants = f"{preset.title} (quick)", list(preset.variants)
    n_groups = -(-n_runs // group_size)
    end = time.time() - 3600.0  # the newest group finished well before the build
    every = SPAN_DAYS * 86400.0 / n_groups
    statuses = rng.choice(list(STATUS_SHARES), size=n_runs, p=list(STATUS_SHARES.values()))
    runs, groups = [], []
    for index in range(n_runs):
        k, j = divmod(index, group_size)
        if j == 0:
            created = end - (n_groups - k) * every + rng.uniform(0, every / 2)
            stamp = time.strftime("%Y%m%d-%H%M%S-", time.localtime(created))
            group_id = stamp + rng.bytes(3).hex()
            groups.append((group_id, f"{title} #{k + 1}", created))
            finished = created
        config: TrainConfig = configs[j % len(configs)]
        status = str(statuses[index])
        done = {"completed": epochs, "cancelled": int(rng.integers(1, epochs + 1)) - 1}
        started = finished + rng.uniform(0.5, 2.0)  # the runner claims it once the last one ends
        epoch_seconds = rng.uniform(1.4, 2.6, size=epochs)
        runs.append(
            {
                "id": index + 1,
                "group_id": group_id,
                "config": config,
                "variant_rank": variants.index(config.variant),  # BN sites, 0 to 4
                "status": status,
                "created_at": groups[-1][2],
                "started_at": started,
                "epochs_done": done.get(status, 0),
                "epoch_seconds": epoch_seconds,
            }
        )
        # 5 s to start and compile, 0.3 s of validation per epoch, 1 s on the test set.
        finished = started + 5.0 + float(epoch_seconds.sum()) + 0.3 * epochs + 1.0
        if status != "completed":
            finished = started + 5.0 + float(epoch_seconds[: runs[-1]["epochs_done"]].sum()) + 2.0
        runs[-1]["finished_at"] = finished
    return runs, groups


def _curves(runs: list[dict], epochs: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-step training loss and accuracy of every run, as Keras reports them (the mean over
    the epoch so far), and the end-of-epoch validation numbers.

    The underlying per-step curves fall (loss) and rise (accuracy) exponentially with a time
    constant that shrinks with the number of BN sites, towards an accuracy that grows with
    it (~0.86 plain, ~0.88 with BN at four sites, +-0.01 across seeds), plus step noise."""
    n, steps = len(runs), epochs * STEPS_PER_EPOCH
    rank = np.array([r["variant_rank"] for r in runs], dtype=float)[:, None]  # (n, 1)
    final = 0.872 + 0.006 * rank + rng.normal(0, 0.004, size=(n, 1))  # train accuracy at the end
    tau = 180.0 / (1.0 + 0.35 * rank) * rng.uniform(0.9, 1.1, size=(n, 1))  # in steps
    s = np.arange(1, steps + 1, dtype=float)[None, :]  # (1, steps)
    decay = np.exp(-s / tau)  # (n, steps)
    floor = 1.15 - final  # the loss the accuracy ends at, ~0.25-0.3
    clean_loss = floor * (1 - 0.25 * s / steps) + (np.log(10) - floor) * decay
    clean_acc = final - (final - 0.1) * decay
    loss = clean_loss * (1 + rng.normal(0, 0.06, size=clean_loss.shape))
    accuracy = np.clip(clean_acc + rng.normal(0, 0.025, size=clean_acc.shape), 0, 1)
    # (n, epochs*78) -> (n, epochs, 78): Keras' running mean restarts every epoch.
    count = np.arange(1, STEPS_PER_EPOCH + 1)
    running = {
        name: np.cumsum(v.reshape(n, epochs, STEPS_PER_EPOCH), axis=2) / count
        for name, v in (("loss", loss), ("accuracy", accuracy))
    }
    end_loss = clean_loss.reshape(n, epochs, STEPS_PER_EPOCH)[:, :, -1]  # (n, epochs)
    end_acc = clean_acc.reshape(n, epochs, STEPS_PER_EPOCH)[:, :, -1]
    return {
        "loss": running["loss"],  # (n, epochs, 78)
        "accuracy": running["accuracy"],
        "val_loss": end_loss * 1.04 + rng.normal(0, 0.01, size=end_loss.shape),  # (n, epochs)
        "val_accuracy": np.clip(end_acc - 0.008 + rng.normal(0, 0.003, size=end_acc.shape), 0, 1),
    }


def _insert(db: sqlite3.Connection, runs: list[dict], curves: dict, groups: list) -> None:
    """All rows, in the open transaction on ``db``."""
    batches = np.arange(EVENT_EVERY, STEPS_PER_EPOCH + 1, EVENT_EVERY)  # 3, 6, ..., 78
    run_rows, epoch_rows, batch_rows = [], [], []
    for i, run in enumerate(runs):
        config, done = run["config"], run["epochs_done"]
        t0 = run["started_at"] + 5.0
        ends = t0 + np.cumsum(run["epoch_seconds"] + 0.3)  # (epochs,) after validation
        for e in range(done):
            seconds = float(run["epoch_seconds"][e])
            begin = float(ends[e]) - 0.3 - seconds
            loss, acc = curves["loss"][i, e], curves["accuracy"][i, e]
            images = STEPS_PER_EPOCH * config.batch_size
            epoch_rows.append(
                (run["id"], e + 1, (e + 1) * STEPS_PER_EPOCH, float(loss[-1]), float(acc[-1]))
                + (float(curves["val_loss"][i, e]), float(curves["val_accuracy"][i, e]))
                + (seconds, images / seconds, float(ends[e]))
            )
            step0 = e * STEPS_PER_EPOCH
            batch_rows.extend(
                zip(
                    [run["id"]] * len(batches),
                    (step0 + batches).tolist(),
                    [e + 1] * len(batches),
                    batches.tolist(),
                    (e + batches / STEPS_PER_EPOCH).tolist(),
                    loss[batches - 1].tolist(),
                    acc[batches - 1].tolist(),
                    (begin + seconds * batches / STEPS_PER_EPOCH).tolist(),
                    strict=True,
                )
            )
        status = run["status"]
        completed = status == "completed"
        test_acc = float(curves["val_accuracy"][i, -1] + 0.002) if completed else None
        test_loss = float(curves["val_loss"][i, -1] * 1.01) if completed else None
        error = {"cancelled": f"cancelled after epoch {done}", "failed": FAILURE}.get(status)
        run_rows.append(
            (run["id"], run["group_id"], config.variant, config.seed)
            + (json.dumps(config.to_dict()), status, run["created_at"], run["started_at"])
            + (run["finished_at"], run["finished_at"], int(status == "cancelled"), error)
            + (DATA_SOURCE, STEPS_PER_EPOCH, STEPS_PER_EPOCH * config.epochs, test_loss)
            + (test_acc, 0)
        )
    db.executemany(
        f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
        run_rows,
    )
    db.executemany(
        "INSERT INTO epoch_metrics (run_id, epoch, step, loss, accuracy, val_loss,"
        " val_accuracy, seconds, images_per_second, t) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        epoch_rows,
    )
    db.executemany(
        "INSERT INTO batch_metrics (run_id, step, epoch, batch, epoch_progress, loss, accuracy,"
        " t) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        batch_rows,
    )
    if _has_groups_table(db):
        db.executemany("INSERT INTO groups (id, name, created_at) VALUES (?, ?, ?)", groups)


def _has_groups_table(db: sqlite3.Connection) -> bool:
    found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'groups'")
    return found.fetchone() is not None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("home", type=Path, help="folder of the new store (BN_LAB_HOME)")
    parser.add_argument("--runs", type=int, default=5000, help="finished runs to write")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run")
    parser.add_argument("--group-size", type=int, default=15, help="runs per group")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the curves")
    args = parser.parse_args()
    start = time.perf_counter()
    try:
        path = build(args.home, args.runs, args.epochs, args.group_size, args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    with sqlite3.connect(path) as db:
        counts = [
            db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("runs", "epoch_metrics", "batch_metrics")
        ]
    print(
        f"{path}: {counts[0]:,} runs, {counts[1]:,} epoch rows, {counts[2]:,} batch rows"
        f" in {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
