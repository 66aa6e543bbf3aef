"""Run stores for the migration and fault tests: stores as older BN Labs wrote them (their
schemas, copied literally from their sources, so these tests keep meaning "a file as that code
wrote it" whatever the code becomes), a finished run, reading a store back, a read-only folder,
and the CLI run in this process."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from bn_core.cli import main
from bn_core.config import TrainConfig
from bn_core.runs.store.run_store import RunStore

# bn_core/runs/store/schema.py's SCHEMA at af657e3 (the last store without a version): WAL mode,
# this script, and the ``stage`` column; user_version stayed 0.
UNVERSIONED_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,     -- also the queue order
    group_id TEXT NOT NULL,                   -- runs started together (one click, one sweep)
    variant TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config_json TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    heartbeat REAL,
    pid INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    data_source TEXT,
    steps_per_epoch INTEGER,
    total_steps INTEGER,
    test_loss REAL,
    test_accuracy REAL,
    stage TEXT                                -- what a running run is doing (records.py)
);
CREATE TABLE IF NOT EXISTS batch_metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL, epoch INTEGER NOT NULL, batch INTEGER NOT NULL,
    epoch_progress REAL NOT NULL, loss REAL, accuracy REAL, t REAL NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS epoch_metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL, step INTEGER NOT NULL, loss REAL, accuracy REAL,
    val_loss REAL, val_accuracy REAL, seconds REAL, images_per_second REAL, t REAL NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status);
-- Probes (bn_core.nn.probes, only for runs with probe_every > 0). Added later than the tables
-- above: CREATE ... IF NOT EXISTS upgrades an existing store in place.
CREATE TABLE IF NOT EXISTS probe_steps (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL, epoch_progress REAL NOT NULL,
    accuracy REAL,                            -- on the probe batch, inference mode
    t REAL NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS probe_percentiles (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL, site TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('layer', 'unit')),
    p15 REAL, p50 REAL, p85 REAL,             -- of the activation's input
    PRIMARY KEY (run_id, step, site, scope)
);
CREATE TABLE IF NOT EXISTS grad_norms (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL, layer TEXT NOT NULL, norm REAL,
    PRIMARY KEY (run_id, step, layer)
);
CREATE TABLE IF NOT EXISTS mode_gap (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    inference REAL, batch_stats REAL,         -- validation accuracy in each BN mode
    PRIMARY KEY (run_id, epoch)
);
"""

# bn_core/store.py's _SCHEMA at 2e8412a: before the probe tables and the ``stage`` column.
STUDIES_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,     -- also the queue order
    group_id TEXT NOT NULL,                   -- runs started together (one click, one sweep)
    variant TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config_json TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    heartbeat REAL,
    pid INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    data_source TEXT,
    steps_per_epoch INTEGER,
    total_steps INTEGER,
    test_loss REAL,
    test_accuracy REAL
);
CREATE TABLE IF NOT EXISTS batch_metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL, epoch INTEGER NOT NULL, batch INTEGER NOT NULL,
    epoch_progress REAL NOT NULL, loss REAL, accuracy REAL, t REAL NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS epoch_metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL, step INTEGER NOT NULL, loss REAL, accuracy REAL,
    val_loss REAL, val_accuracy REAL, seconds REAL, images_per_second REAL, t REAL NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status);
"""

# What migration 2 (run owners, runners, the replay queue: migrations.py at 245fa82) added to
# the unversioned schema, as SQL.
V2_ADDITIONS = """
ALTER TABLE runs ADD COLUMN owner TEXT;
ALTER TABLE runs ADD COLUMN resumes INTEGER NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS runners (
    id TEXT PRIMARY KEY,                      -- the runner's owner string
    kind TEXT NOT NULL,                       -- dashboard, runner, submit --wait, ...
    started_at REAL NOT NULL,
    heartbeat REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS replay_jobs (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    heartbeat REAL,
    pid INTEGER,
    owner TEXT,
    error TEXT
);
"""


def old_store(home: Path, schema: str, runs: int = 3, steps: int = 4, journal: str = "WAL") -> Path:
    """``home/runs.sqlite`` as the code of ``schema`` left it: WAL mode (or ``journal``: a
    backup, which is in DELETE mode, put back in place), user_version 0, with ``runs``
    finished runs (seeds 0, 1, ...), ``steps`` batch rows and one epoch row each, and probe
    rows when the schema has probe tables."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "runs.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute(f"PRAGMA journal_mode={journal}")
        db.executescript(schema)
        probes = "probe_steps" in schema
        db.execute("BEGIN")
        for seed in range(runs):
            config = json.dumps(TrainConfig(seed=seed, epochs=2).to_dict())
            run_id = db.execute(
                "INSERT INTO runs (group_id, variant, seed, config_json, status, created_at,"
                " finished_at, test_loss, test_accuracy) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ("g", "lenet", seed, config, "completed", 1.0 + seed, 2.0 + seed, 0.5, 0.9),
            ).lastrowid
            for step in range(1, steps + 1):
                db.execute(
                    "INSERT INTO batch_metrics VALUES (?, ?, 1, ?, ?, ?, 0.5, ?)",
                    (run_id, step, step, step / steps, 1.0 / step, float(step)),
                )
            db.execute(
                "INSERT INTO epoch_metrics VALUES (?, 1, ?, 1.0, 0.5, 1.1, 0.45, 2.0, 99.0, 3.0)",
                (run_id, steps),
            )
            if probes:
                db.execute("INSERT INTO probe_steps VALUES (?, 32, 0.5, 0.7, 4.0)", (run_id,))
                db.execute(
                    "INSERT INTO probe_percentiles VALUES (?, 32, 'bn1', 'layer', -1, 0, 1)",
                    (run_id,),
                )
                db.execute("INSERT INTO grad_norms VALUES (?, 32, 'dense', 0.25)", (run_id,))
                db.execute("INSERT INTO mode_gap VALUES (?, 1, 0.4, 0.45)", (run_id,))
        db.execute("COMMIT")
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    finally:
        db.close()
    return path


def dump(path: Path, columns_of: dict[str, list[str]] | None = None) -> dict[str, list[tuple]]:
    """Every row of every table of the store at ``path`` (only ``columns_of[table]`` when
    given: the columns an older version had), sorted."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        if columns_of is not None:
            tables = [t for t in tables if t in columns_of]
        out = {}
        for table in tables:
            columns = columns_of[table] if columns_of else ["*"]
            rows = db.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            out[table] = sorted(rows, key=repr)
        return out
    finally:
        db.close()


def version(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def finished_run(store: RunStore, seed: int, group: str = "g", accuracy: float = 0.9) -> int:
    """A completed lenet run with one epoch and two batches recorded."""
    run_id = store.create_run(TrainConfig(seed=seed, epochs=1), group)
    store.transition(run_id, ("queued",), "running", started_at=1.0)
    store.update(run_id, steps_per_epoch=2, total_steps=2)
    for step in (1, 2):
        store.add_batch(
            run_id,
            {
                "step": step,
                "epoch": 1,
                "batch": step,
                "epoch_progress": step / 2,
                "loss": 1.0,
                "accuracy": 0.5,
            },
        )
    store.add_epoch(
        run_id,
        {
            "epoch": 1,
            "step": 2,
            "loss": 1.0,
            "accuracy": 0.5,
            "val_loss": 1.1,
            "val_accuracy": accuracy - 0.01,
            "seconds": 1.0,
            "images_per_second": 100.0,
        },
    )
    store.transition(run_id, ("running",), "completed", test_accuracy=accuracy, test_loss=0.3)
    return run_id


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@contextlib.contextmanager
def read_only_folder(folder: Path):
    """Yields ``freeze``: after it, ``folder`` and what it holds cannot be written, for real.
    As root (whom file modes do not stop) a tmpfs mounted on ``folder``, then remounted
    read-only; otherwise ``chmod -w``. Skips when neither is possible here."""
    folder.mkdir(parents=True)
    if os.geteuid() != 0:

        def freeze() -> None:
            for path in [folder, *folder.rglob("*")]:
                path.chmod(0o555 if path.is_dir() else 0o444)

        try:
            yield freeze
        finally:
            for path in [folder, *folder.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
        return
    mount = ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)]
    done = subprocess.run(mount, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(
            "as root file modes do not stop writes, and a tmpfs cannot be mounted here "
            f"({done.stderr.strip()}): no read-only file system to test on"
        )

    def freeze() -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)

    try:
        yield freeze
    finally:
        for _ in range(50):  # a page's last connection may still be closing
            if subprocess.run(["umount", str(folder)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", str(folder)], check=False)
