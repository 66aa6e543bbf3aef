"""The store's schema as ordered, versioned migrations (the way MLflow's tracking store does it).

The file's ``PRAGMA user_version`` says which migrations it has had. Opening a store
(``migrate``) applies the missing ones in order, all in one write transaction that also sets
the new version, so a store is always at exactly one version, never half-migrated. Each
migration is named for what it changes; its version number is its place in the order (a
stored version must keep its meaning, so numbers are never reused or reordered):

- version 0: no version recorded. Either a new, empty file, or a store written by a BN Lab
  from before the schema was versioned: the tables of migration 1, perhaps without its later
  additions (the ``stage`` column, the probe tables).
- version 1: the base tables (runs, batch/epoch metrics, probes, mode gaps, stages).
- version 2: who owns a running run (``owner``), how often it was resumed (``resumes``), the
  live runners (``runners``) and the window-replay queue (``replay_jobs``).
- version 3: run names, tags and the machine that ran each run (``node``), group names
  (``groups``), and an index that lists groups and their runs without reading every row.
- version 4: where each run executes (``backend``: NULL for this machine's processes, ``ray``
  for a Ray cluster) and its training speed (``images_per_second``).

Before migrating a store that holds runs, a copy is kept in ``backups/`` beside it (SQLite's
online backup API, so the copy is consistent even while others read it). A store whose version
is newer than ``LATEST`` was written by a newer BN Lab: it is refused, untouched.

A migration is a list of statements run one by one (not ``executescript``, which would commit
the transaction half way). To add one: append a ``Migration`` with the next version, and a
test that opens a store of the previous version (tests/test_migrations.py).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bn_core.runs.store.errors import StoreError, describe


@dataclass(frozen=True)
class Migration:
    version: int  # the store's version once applied
    summary: str
    apply: Callable[[sqlite3.Connection], None]


_BASE_TABLES = (
    """CREATE TABLE IF NOT EXISTS runs (
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
    )""",
    """CREATE TABLE IF NOT EXISTS batch_metrics (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step INTEGER NOT NULL, epoch INTEGER NOT NULL, batch INTEGER NOT NULL,
        epoch_progress REAL NOT NULL, loss REAL, accuracy REAL, t REAL NOT NULL,
        PRIMARY KEY (run_id, step)
    )""",
    """CREATE TABLE IF NOT EXISTS epoch_metrics (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        epoch INTEGER NOT NULL, step INTEGER NOT NULL, loss REAL, accuracy REAL,
        val_loss REAL, val_accuracy REAL, seconds REAL, images_per_second REAL, t REAL NOT NULL,
        PRIMARY KEY (run_id, epoch)
    )""",
    "CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status)",
    # Probes (bn_core.nn.probes, only for runs with probe_every > 0).
    """CREATE TABLE IF NOT EXISTS probe_steps (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step INTEGER NOT NULL, epoch_progress REAL NOT NULL,
        accuracy REAL,                            -- on the probe batch, inference mode
        t REAL NOT NULL,
        PRIMARY KEY (run_id, step)
    )""",
    """CREATE TABLE IF NOT EXISTS probe_percentiles (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step INTEGER NOT NULL, site TEXT NOT NULL,
        scope TEXT NOT NULL CHECK (scope IN ('layer', 'unit')),
        p15 REAL, p50 REAL, p85 REAL,             -- of the activation's input
        PRIMARY KEY (run_id, step, site, scope)
    )""",
    """CREATE TABLE IF NOT EXISTS grad_norms (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step INTEGER NOT NULL, layer TEXT NOT NULL, norm REAL,
        PRIMARY KEY (run_id, step, layer)
    )""",
    """CREATE TABLE IF NOT EXISTS mode_gap (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        epoch INTEGER NOT NULL,
        inference REAL, batch_stats REAL,         -- validation accuracy in each BN mode
        PRIMARY KEY (run_id, epoch)
    )""",
)


def _base_tables(db: sqlite3.Connection) -> None:
    """The tables of the first versioned store; a version-0 store from before the ``stage``
    column or the probe tables gets what it lacks (CREATE ... IF NOT EXISTS leaves existing
    tables alone)."""
    for statement in _BASE_TABLES:
        db.execute(statement)
    _add_columns(db, "runs", {"stage": "TEXT"})


def _owners_and_replay_queue(db: sqlite3.Connection) -> None:
    """Who has a running run and how often it resumed, the live runners, the queue of window
    replays: so a run whose process died is found without a heartbeat, and resumed."""
    _add_columns(
        db,
        "runs",
        {
            # "host/pid/process start time" of the process that has a starting or running run
            # (bn_core.runs.store.owner): its death is detected even when no heartbeat was written.
            "owner": "TEXT",
            "resumes": "INTEGER NOT NULL DEFAULT 0",  # times it continued from a checkpoint
        },
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS runners (
            id TEXT PRIMARY KEY,                      -- the runner's owner string
            kind TEXT NOT NULL,                       -- dashboard, runner, submit --wait, ...
            started_at REAL NOT NULL,
            heartbeat REAL NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS replay_jobs (
            run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
            status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            heartbeat REAL,
            pid INTEGER,
            owner TEXT,
            error TEXT
        )"""
    )


def _names_tags_and_groups(db: sqlite3.Connection) -> None:
    """Run names and tags, nodes, group names, and the index that lists groups without
    reading every run: for stores of thousands of runs. A group without a ``groups`` row
    (every group of an older store) is named by its id (``bn_core.runs.store.catalog``)."""
    _add_columns(
        db,
        "runs",
        {
            "name": "TEXT",  # NULL: unnamed (shown as "variant seed N")
            "tags": "TEXT",  # NULL, or the tags joined by commas (a tag holds no comma)
            "node": "TEXT",  # the host that ran it; NULL while queued, and for older runs
        },
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS groups (
            id TEXT PRIMARY KEY,                      -- runs.group_id
            name TEXT NOT NULL,
            created_at REAL NOT NULL
        )"""
    )
    # Leads with group_id (a group's runs), and covers what the group list aggregates (counts
    # by status, first run of each variant, first created): that list reads no table rows.
    db.execute(
        "CREATE INDEX IF NOT EXISTS runs_by_group ON runs(group_id, variant, status, created_at)"
    )


def _backend_and_speed(db: sqlite3.Connection) -> None:
    """Where a run executes (this machine or a Ray cluster) and its training speed. Older
    runs ran here: NULL."""
    _add_columns(
        db,
        "runs",
        {
            "backend": "TEXT",  # NULL: local worker processes; 'ray': a Ray cluster
            "images_per_second": "REAL",  # training images per second of training, at its end
        },
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "base tables: runs, metrics, probes, mode gaps, stages", _base_tables),
    Migration(2, "run owners and resumes, runners, the replay queue", _owners_and_replay_queue),
    Migration(3, "group names, run names and tags, nodes", _names_tags_and_groups),
    Migration(4, "the backend a run executes on, images per second", _backend_and_speed),
)
LATEST = MIGRATIONS[-1].version


def _add_columns(db: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    for name, kind in columns.items():
        if name not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def version_of(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, path: Path, *, keep_backup: bool = True) -> int | None:
    """Bring the store open on ``db`` (the file at ``path``) to ``LATEST``; returns the version
    it had if it was migrated, None if it was already current. Refuses (``StoreError``,
    kind ``newer``) a store from a newer BN Lab, touching nothing. ``keep_backup=False``
    skips the backup (for a file that is itself a throwaway copy)."""
    version = refuse_newer(db, path)
    if version == LATEST:
        return None
    if keep_backup and _has_runs(db):
        backup(db, backup_path(path, version))
    db.execute("BEGIN IMMEDIATE")  # one migrator at a time; the others wait, then see LATEST
    try:
        version = refuse_newer(db, path)  # another process may have migrated meanwhile
        for step in MIGRATIONS:
            if step.version > version:
                step.apply(db)
        db.execute(f"PRAGMA user_version = {LATEST}")
    except BaseException:
        # A step that failed for a full disk or an I/O error may have rolled back already:
        # "cannot rollback - no transaction is active" must not replace the error saying why.
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return version


def refuse_newer(db: sqlite3.Connection, path: Path) -> int:
    """The version of the store open on ``db``; ``StoreError`` (kind ``newer``) when a newer
    BN Lab wrote it. Reads only: call it before anything writes to the file (even switching
    its journal mode would change a store that must be left as it is)."""
    version = version_of(db)
    if version > LATEST:
        raise StoreError("newer", describe("newer", path, _newer(version)), path)
    return version


def _newer(version: int) -> str:
    return f"schema version {version}; this BN Lab reads versions up to {LATEST}"


def _has_runs(db: sqlite3.Connection) -> bool:
    found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'")
    return found.fetchone() is not None and db.execute("SELECT 1 FROM runs LIMIT 1").fetchone()


def backup_path(path: Path, version: int) -> Path:
    """``backups/runs-v{version}-{time}-{pid}.sqlite`` beside the store at ``path``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return path.parent / "backups" / f"{path.stem}-v{version}-{stamp}-{os.getpid()}.sqlite"


def backup(db: sqlite3.Connection, target: Path) -> Path:
    """A consistent copy of the store open on ``db`` at ``target`` (SQLite's online backup
    API: pages are copied under a read lock, so concurrent writers never tear it). Written to a
    temporary name first, so ``target`` is either absent or complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        copy = sqlite3.connect(partial)
        try:
            db.backup(copy)
            # One self-contained file: a copy left in WAL mode (the store's) would grow -wal
            # and -shm files beside it whenever it is opened, even to be read.
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
    except BaseException:
        partial.unlink(missing_ok=True)  # a disk too small for the copy keeps no half of it
        raise
    os.replace(partial, target)
    return target
