"""bn_core.runs.store.errors and schema.connect: which SQLite errors are store problems, and how the
others leave ``connect`` (as they were raised)."""

from __future__ import annotations

import sqlite3

import pytest

from bn_core.runs.store.errors import StoreError, kind_of, store_error
from bn_core.runs.store.run_store import RunStore
from bn_core.runs.store.schema import connect

CANNOT_OPEN = "unable to open database file"


def test_unable_to_open_an_existing_store_is_read_only(tmp_path):
    path = tmp_path / "runs.sqlite"
    path.write_bytes(b"")
    exc = sqlite3.OperationalError(CANNOT_OPEN)
    assert kind_of(exc) == kind_of(exc, path) == "readonly"
    error = store_error(exc, path)
    assert error.kind == "readonly" and error.path == path and "history can be viewed" in str(error)


def test_unable_to_open_a_store_that_does_not_exist_is_an_unusable_folder(tmp_path):
    path = tmp_path / "runs.sqlite"
    exc = sqlite3.OperationalError(CANNOT_OPEN)
    assert kind_of(exc, path) == "home"
    error = store_error(exc, path)
    assert error.kind == "home" and error.path == tmp_path
    assert str(error) == (
        f"BN_LAB_HOME {tmp_path} cannot be used as the run store's folder (it cannot hold a new "
        f"run store: runs.sqlite cannot be created there, {CANNOT_OPEN}): make it a folder you "
        "can write to, or point BN_LAB_HOME at one"
    )


def test_an_error_that_is_not_the_files_leaves_connect_as_it_was(tmp_path):
    store = RunStore(tmp_path / "home")
    with pytest.raises(sqlite3.OperationalError) as caught, connect(store.path) as db:
        db.execute("SELECT * FROM no_such_table")
    assert "no such table" in str(caught.value)
    assert caught.value.__cause__ is None  # not chained to itself


def test_a_store_problem_leaves_connect_as_a_store_error_caused_by_sqlites(tmp_path):
    path = tmp_path / "runs.sqlite"
    path.write_bytes(b"not a database, not at all" * 200)
    with pytest.raises(StoreError) as caught, connect(path) as db:
        db.execute("SELECT * FROM runs")
    assert caught.value.kind == "damaged"
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
