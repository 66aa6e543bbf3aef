"""The run store's versioned schema (bn_core.runs.store.migrations): stores written by older BN Labs
open, migrate and keep every row, with a backup; a newer store is refused untouched; two
processes migrating at once, and a migration failing half way, leave one consistent version.

The old stores are made with the SQL those versions ran, copied literally from their sources
into tests/store_helpers.py, so these tests keep meaning "a file as that code wrote it" whatever
the code becomes.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from bn_core.cli import main
from bn_core.config import TrainConfig
from bn_core.runs.store import migrations
from bn_core.runs.store.errors import StoreError
from bn_core.runs.store.migrations import LATEST, Migration
from bn_core.runs.store.run_store import RunStore
from tests.store_helpers import (
    STUDIES_SCHEMA,
    UNVERSIONED_SCHEMA,
    V2_ADDITIONS,
    digest,
    dump,
    old_store,
    version,
)

LATEST_TABLES = {
    "runs",
    "batch_metrics",
    "epoch_metrics",
    "probe_steps",
    "probe_percentiles",
    "grad_norms",
    "mode_gap",
    "runners",
    "replay_jobs",
    "groups",
}


def columns(path: Path) -> dict[str, list[str]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [
            n
            for (n,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {n: [row[1] for row in db.execute(f"PRAGMA table_info({n})")] for n in names}
    finally:
        db.close()


def schema_of(path: Path) -> dict[str, list[tuple]]:
    """Per table: (name, type, notnull, default, pk) of each column, in column order."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            table: [row[1:] for row in db.execute(f"PRAGMA table_info({table})")]
            for table in LATEST_TABLES
        }
    finally:
        db.close()


def test_a_new_store_is_at_the_latest_version_with_every_table(tmp_path):
    store = RunStore(tmp_path / "home")
    assert version(store.path) == LATEST == len(migrations.MIGRATIONS)
    assert set(columns(store.path)) == LATEST_TABLES
    runs_columns = set(columns(store.path)["runs"])
    assert {"stage", "owner", "resumes", "name", "tags", "node", "backend"} <= runs_columns
    assert not (store.home / "backups").exists()  # nothing to keep a copy of
    run_id = store.create_run(TrainConfig(), "g")
    assert RunStore(store.home).get(run_id).resumes == 0  # reopening migrates nothing


def test_an_unversioned_store_migrates_keeping_every_row_and_a_backup(tmp_path):
    home = tmp_path / "home"
    path = old_store(home, UNVERSIONED_SCHEMA, runs=3, steps=4)
    before, old_columns = dump(path), columns(path)
    assert set(before) == LATEST_TABLES - {"runners", "replay_jobs", "groups"}

    store = RunStore(home)
    assert version(path) == LATEST and not store.read_only
    assert dump(path, old_columns) == before  # every row, every value of the old columns
    runs = store.list_runs()
    assert [(r.seed, r.status, r.config.epochs, r.owner, r.resumes) for r in runs] == [
        (0, "completed", 2, None, 0),
        (1, "completed", 2, None, 0),
        (2, "completed", 2, None, 0),
    ]
    ids = [r.id for r in runs]
    assert len(store.batch_metrics(ids)) == 12 and len(store.epoch_metrics(ids)) == 3
    assert len(store.probe_rows(ids)) == 3 and len(store.mode_gap_rows(ids)) == 3
    # The migrated file has exactly the schema a new store gets.
    assert schema_of(path) == schema_of(RunStore(tmp_path / "new").path)

    (backup,) = (home / "backups").iterdir()
    assert backup.name.startswith("runs-v0-") and backup.suffix == ".sqlite"
    db = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()
    assert version(backup) == 0 and columns(backup) == old_columns
    assert dump(backup) == before
    RunStore(home)  # opening the migrated store again makes no second backup
    assert len(list((home / "backups").iterdir())) == 1


def test_a_store_older_than_the_stage_column_and_the_probe_tables_migrates(tmp_path):
    home = tmp_path / "home"
    path = old_store(home, STUDIES_SCHEMA, runs=2, steps=3)
    before, old_columns = dump(path), columns(path)
    assert "stage" not in old_columns["runs"] and "probe_steps" not in old_columns

    store = RunStore(home)
    assert version(path) == LATEST
    assert schema_of(path) == schema_of(RunStore(tmp_path / "new").path)
    assert dump(path, old_columns) == before
    runs = store.list_runs()
    assert [(r.seed, r.stage) for r in runs] == [(0, None), (1, None)]
    assert store.probe_rows([r.id for r in runs]) == []
    store.update(runs[0].id, stage="compiling")  # the new columns work
    assert store.get(runs[0].id).stage == "compiling"
    (backup,) = (home / "backups").iterdir()
    assert dump(backup) == before


def test_a_version_2_store_migrates_to_names_tags_nodes_and_groups(tmp_path):
    home = tmp_path / "home"
    path = old_store(home, UNVERSIONED_SCHEMA + V2_ADDITIONS, runs=3, steps=4)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA user_version = 2")  # as a BN Lab of schema version 2 left it
    finally:
        db.close()
    before, old_columns = dump(path), columns(path)
    assert "groups" not in old_columns and "name" not in old_columns["runs"]
    assert {"owner", "resumes", "runners", "replay_jobs"} <= {*old_columns, *old_columns["runs"]}

    store = RunStore(home)
    assert version(path) == LATEST and not store.read_only
    assert dump(path, old_columns) == before  # every run and metric, every old value
    assert schema_of(path) == schema_of(RunStore(tmp_path / "new").path)
    runs = store.list_runs()
    # Migration 4 too: every older run ran here, on this machine's processes.
    assert {(r.backend, r.backend_name, r.images_per_second) for r in runs} == {
        (None, "local", None)
    }
    assert [(r.seed, r.name, r.tags, r.node, r.display_name) for r in runs] == [
        (0, None, None, None, "lenet seed 0"),
        (1, None, None, None, "lenet seed 1"),
        (2, None, None, None, "lenet seed 2"),
    ]
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        indexes = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert db.execute("SELECT COUNT(*) FROM groups").fetchone()[0] == 0
    finally:
        db.close()
    assert "runs_by_group" in indexes
    # An old group has no name of its own: its id names it, until it is renamed.
    (group,) = store.list_groups()
    assert (group.id, group.name, group.runs, group.completed, group.active) == ("g", "g", 3, 3, 0)
    assert store.rename_group("g", " Old study ") == "Old study"
    assert store.group("g").name == "Old study" and store.group("g").created_at == 1.0
    store.rename_run(runs[0].id, "first")
    assert store.set_tags(runs[0].id, ["old", "v2"]) == ("old", "v2")
    assert (store.get(runs[0].id).name, store.get(runs[0].id).tag_list) == ("first", ("old", "v2"))

    (backup,) = (home / "backups").iterdir()
    assert backup.name.startswith("runs-v2-") and version(backup) == 2
    assert columns(backup) == old_columns and dump(backup) == before


def test_a_store_from_a_newer_bn_lab_is_refused_untouched(tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    path = RunStore(home).path
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=DELETE")  # as a newer BN Lab might leave it
        db.execute(
            "INSERT INTO runs (group_id, variant, seed, config_json, status, created_at)"
            " VALUES ('g', 'lenet', 0, '{}', 'completed', 1.0)"
        )
        db.execute("PRAGMA user_version = 99")
    finally:
        db.close()
    before = digest(path)

    with pytest.raises(StoreError) as caught:
        RunStore(home)
    message = str(caught.value)
    assert caught.value.kind == "newer" and "\n" not in message
    assert str(path) in message and "version 99" in message and f"up to {LATEST}" in message
    assert digest(path) == before and version(path) == 99
    assert not (home / "backups").exists()

    monkeypatch.setenv("BN_LAB_HOME", str(home))
    assert main(["runs"]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "newer BN Lab" in err and str(path) in err
    assert digest(path) == before


def _open_at_once(home: str, barrier, results) -> None:
    """One of two processes: wait for the other, open the store, report what it saw."""
    barrier.wait(timeout=60)
    try:
        store = RunStore(home)
        results.put(("ok", [(r.id, r.seed) for r in store.list_runs()]))
    except BaseException as exc:  # noqa: BLE001 - reported to the test, which fails on it
        results.put(("error", f"{type(exc).__name__}: {exc}"))


@pytest.mark.parametrize("journal", ["WAL", "DELETE"])
def test_two_processes_opening_an_old_store_at_once_both_succeed(tmp_path, journal):
    home = tmp_path / "home"
    # ~10k rows: the backup takes a while. DELETE: both also switch the file to WAL at once.
    path = old_store(home, UNVERSIONED_SCHEMA, runs=200, steps=50, journal=journal)
    before, old_columns = dump(path), columns(path)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=_open_at_once, args=(str(home), barrier, results)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    expected = [(i + 1, i) for i in range(200)]
    assert outcomes == [("ok", expected), ("ok", expected)], outcomes
    assert version(path) == LATEST
    assert dump(path, old_columns) == before  # each run once, every metric kept
    backups = list((home / "backups").iterdir())
    assert 1 <= len(backups) <= 2  # the second may have found the store already migrated
    for backup in backups:
        assert dump(backup) == before


def test_a_migration_failing_half_way_leaves_the_store_at_its_old_version(tmp_path, monkeypatch):
    home = tmp_path / "home"
    path = old_store(home, UNVERSIONED_SCHEMA, runs=2)
    before, old_schema = dump(path), columns(path)

    def half_then_disk_full(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE runs ADD COLUMN backend TEXT")  # a column of the latest migration
        raise sqlite3.OperationalError("database or disk is full")

    broken = Migration(LATEST, "fails after its first statement", half_then_disk_full)
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS[:-1], broken))
    with pytest.raises(StoreError) as caught:
        RunStore(home)
    assert caught.value.kind == "full" and "disk full" in str(caught.value)
    assert version(path) == 0  # not 1: migration 1 rolled back with the failed one
    assert columns(path) == old_schema and dump(path) == before

    monkeypatch.undo()  # the disk has room again: the real migrations run
    store = RunStore(home)
    assert version(path) == LATEST and len(store.list_runs()) == 2


def test_a_migration_that_sqlite_already_rolled_back_still_says_why_it_failed(
    tmp_path, monkeypatch
):
    """SQLite rolls a transaction back itself on some errors (SQLITE_FULL, SQLITE_IOERR): the
    ROLLBACK that follows then fails ("no transaction is active"), and must not hide the
    error that says what to fix."""
    home = tmp_path / "home"
    path = old_store(home, UNVERSIONED_SCHEMA, runs=2)
    before = dump(path)

    def disk_full_rolled_back(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE runs ADD COLUMN backend TEXT")
        db.execute("ROLLBACK")  # as SQLite does when the disk fills
        raise sqlite3.OperationalError("database or disk is full")

    broken = Migration(LATEST, "fails after SQLite rolled it back", disk_full_rolled_back)
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS[:-1], broken))
    with pytest.raises(StoreError) as caught:
        RunStore(home)
    assert caught.value.kind == "full" and "cannot rollback" not in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert str(caught.value.__cause__) == "database or disk is full"
    assert version(path) == 0 and dump(path) == before
