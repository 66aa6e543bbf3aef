"""The run store's SQLite file: its tables, how a connection is opened, one transaction.

Every call opens its own short-lived connection (``connect``), in autocommit mode with
foreign keys on, so deleting a run deletes its metrics (``ON DELETE CASCADE``). WAL mode lets
the UI read while a worker writes. Values are plain SQL and JSON: no column holds a BLOB.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
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


# Columns added to ``runs`` after stores were first made: name -> SQL type. ``create_tables``
# adds those an existing store lacks (CREATE TABLE IF NOT EXISTS leaves its table as it was).
ADDED_RUN_COLUMNS = {"stage": "TEXT"}


def create_tables(path: Path) -> None:
    """Create the file at ``path`` with every table, or add the tables and columns it lacks;
    switch it to WAL mode (a property of the file, kept once set)."""
    with connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        db.executescript(SCHEMA)
        have = {row["name"] for row in db.execute("PRAGMA table_info(runs)")}
        for name, kind in ADDED_RUN_COLUMNS.items():
            if name not in have:
                try:
                    db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
                except sqlite3.OperationalError as exc:  # another process added it just now
                    if "duplicate column" not in str(exc):
                        raise


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the store at ``path`` in autocommit mode, closed on exit."""
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA foreign_keys=ON")
    # Safe with WAL: a power cut can lose the last writes, never corrupt the file.
    db.execute("PRAGMA synchronous=NORMAL")
    try:
        yield db
    finally:
        db.close()


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN ... COMMIT, or ROLLBACK on any error (connections are in autocommit mode)."""
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
