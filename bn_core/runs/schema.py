"""The run store's SQLite file: opening it (versioned, see ``migrations``), one connection,
one transaction.

Every call opens its own short-lived connection (``connect``), in autocommit mode with
foreign keys on, so deleting a run deletes its metrics (``ON DELETE CASCADE``). WAL mode lets
the UI read while a worker writes. Values are plain SQL and JSON: no column holds a BLOB.

Errors that mean the file or its disk is in trouble (full, read-only, damaged, I/O) leave
``connect`` as ``bn_core.runs.errors.StoreError``, one line naming the file and the fix.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from bn_core.runs.errors import StoreError, describe, store_error
from bn_core.runs.migrations import LATEST, backup, migrate, refuse_newer


def open_store(home: Path, path: Path) -> tuple[Path, bool]:
    """Make sure the store at ``path`` (in folder ``home``) exists at the latest schema version.

    Returns ``(path to read, read_only)``. A store that cannot be written is opened read-only
    (history can be viewed); if it is also older than this BN Lab, its history is read from a
    migrated copy in a temporary folder (the file itself is never changed). Raises
    ``StoreError`` for a damaged or newer store, or an unusable ``home``.
    """
    _make_home(home)
    try:
        with connect(path) as db:
            refuse_newer(db, path)  # before the next line: a newer store stays byte for byte
            db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            migrate(db, path)
        return path, False
    except StoreError as exc:
        if exc.kind != "readonly" or not path.is_file():
            raise
    with connect(path, read_only=True) as db:
        if refuse_newer(db, path) == LATEST:
            return path, True
        folder = Path(tempfile.mkdtemp(prefix="bn-lab-readonly-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        snapshot = folder / path.name
        backup(db, snapshot)
    _SNAPSHOTS[snapshot] = path
    with connect(snapshot) as db:
        migrate(db, snapshot, keep_backup=False)  # the store itself is the backup
    return snapshot, True


# Migrated copies of read-only stores (``open_store``) -> the store each copies: errors met
# reading a copy name the store, the file a user knows and can fix.
_SNAPSHOTS: dict[Path, Path] = {}


def _make_home(home: Path) -> None:
    if home.exists() and not home.is_dir():
        raise StoreError("home", describe("home", home, "it is a file, not a folder"), home)
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if not home.is_dir():
            detail = exc.strerror or type(exc).__name__
            raise StoreError("home", describe("home", home, detail), home) from None


@contextmanager
def connect(path: Path, *, read_only: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection to the store at ``path`` in autocommit mode, closed on exit.

    ``read_only`` opens it with ``mode=ro``, or, when even that fails (WAL needs its
    ``-shm`` file, which a read-only folder may lack), as immutable: a snapshot nobody
    else can be writing, since nobody can write it.
    """
    shown = _SNAPSHOTS.get(path, path)
    try:
        db = _open(path, read_only)
    except (sqlite3.Error, OSError) as exc:
        raise _translated(exc, shown) from exc
    try:
        yield db
    except (sqlite3.Error, OSError) as exc:
        raise _translated(exc, shown) from exc
    finally:
        db.close()


def _open(path: Path, read_only: bool) -> sqlite3.Connection:
    if not read_only:
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    else:
        uri = f"file:{quote(str(path.resolve()))}"
        try:
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30.0, isolation_level=None)
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            with contextlib.suppress(UnboundLocalError):
                db.close()
            db = sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)
    db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA foreign_keys=ON")
        # Safe with WAL: a power cut can lose the last writes, never corrupt the file.
        db.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        db.close()
        raise
    return db


def _translated(exc: BaseException, path: Path) -> BaseException:
    """``exc`` as a ``StoreError`` when it is a problem of the file, else ``exc`` itself."""
    return store_error(exc, path) or exc


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN ... COMMIT, or ROLLBACK on any error (connections are in autocommit mode)."""
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have rolled back already
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
