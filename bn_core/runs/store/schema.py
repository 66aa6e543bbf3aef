"""The run store's SQLite file: opening it (versioned, see ``migrations``), one connection,
one transaction.

Every call opens its own short-lived connection (``connect``), in autocommit mode with
foreign keys on, so deleting a run deletes its metrics (``ON DELETE CASCADE``). WAL mode lets
the UI read while a worker writes. Values are plain SQL and JSON: no column holds a BLOB.

Errors that mean the file or its disk is in trouble (full, read-only, damaged, I/O) leave
``connect`` as ``bn_core.runs.store.errors.StoreError``, one line naming the file and the fix.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from bn_core.runs.store.errors import StoreError, describe, store_error
from bn_core.runs.store.migrations import LATEST, backup, migrate, refuse_newer


def open_store(home: Path, path: Path) -> tuple[Path, bool]:
    """Make sure the store at ``path`` (in folder ``home``) exists at the latest schema version.

    Returns ``(path to read, read_only)``. A store that cannot be written is opened read-only
    (history can be viewed). Its history is read from a copy in a temporary folder (the file
    itself is never changed) when it is older than this BN Lab (the copy is migrated), or when
    its folder cannot be written and its ``-wal`` file holds commits: SQLite could then read
    the main file only, as immutable, without them. On a full disk a store at the latest
    version opens as it is, writable: reads work (``connect``), writes raise the ``full``
    ``StoreError`` until there is room again, and nothing needs a byte of space to open it.
    Raises ``StoreError`` for a damaged or newer store, an older one on a full disk (it cannot
    be migrated), or an unusable ``home``.
    """
    _make_home(home)
    try:
        with connect(path) as db:
            refuse_newer(db, path)  # before the next line: a newer store stays byte for byte
            db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            migrate(db, path)
            _probe_write(db, LATEST)  # a read-only file in a writable folder opens silently
        return path, False
    except StoreError as exc:
        if exc.kind == "full" and _is_file(path):
            with connect(path) as db:
                if refuse_newer(db, path) == LATEST:
                    return path, False
            raise
        if exc.kind != "readonly" or not path.is_file():
            raise
    if _wal_unreadable(path):
        return _wal_snapshot(path), True
    with connect(path, read_only=True) as db:
        if refuse_newer(db, path) == LATEST:
            return path, True
        snapshot = _snapshot_path(path)
        backup(db, snapshot)
    with connect(snapshot) as db:
        migrate(db, snapshot, keep_backup=False)  # the store itself is the backup
    return snapshot, True


def _probe_write(db: sqlite3.Connection, version: int) -> None:
    """Raise (a ``readonly`` error) if the store open on ``db`` cannot be written. SQLite
    opens a file it may only read without a word, and at the latest version nothing has been
    written yet. In WAL mode ``BEGIN IMMEDIATE`` alone succeeds even then (its lock lives in
    the ``-shm`` file), so one write statement that changes nothing is tried, then undone."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(f"PRAGMA user_version = {int(version)}")
    finally:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def _wal_unreadable(path: Path) -> bool:
    """Whether the read-only store at ``path`` has commits in its ``-wal`` file that a
    read-only connection could miss: its folder cannot be written, so SQLite may be unable to
    create the ``-shm`` index a WAL needs and fall back to the main file alone (immutable)."""
    wal = path.with_name(f"{path.name}-wal")
    try:
        return wal.stat().st_size > 0 and not os.access(path.parent, os.W_OK)
    except OSError:
        return False  # no -wal file: the main file holds everything


def _wal_snapshot(path: Path) -> Path:
    """A copy of the store at ``path`` with its ``-wal`` (not ``-shm``: SQLite rebuilds the
    index) in a temporary folder, opened normally so SQLite replays the WAL into it, then made
    one self-contained file and migrated if older. Errors name ``path``, never the copy."""
    snapshot = _snapshot_path(path)
    try:
        shutil.copyfile(path, snapshot)
        shutil.copyfile(path.with_name(f"{path.name}-wal"), f"{snapshot}-wal")
    except OSError as exc:
        translated = _translated(exc, path)
        if translated is exc:
            raise
        raise translated from exc
    with connect(snapshot) as db:
        refuse_newer(db, path)
        db.execute("PRAGMA journal_mode=DELETE")  # checkpoints the WAL into the copy
        migrate(db, snapshot, keep_backup=False)  # the store itself is the backup
    return snapshot


def _snapshot_path(path: Path) -> Path:
    """Where a read-only copy of the store at ``path`` goes: a temporary folder removed at
    exit; the copy is registered so that errors met reading it name ``path``."""
    folder = Path(tempfile.mkdtemp(prefix="bn-lab-readonly-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    snapshot = folder / path.name
    _SNAPSHOTS[snapshot] = path
    return snapshot


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
    ``-shm`` file, which a read-only folder may lack), without the ``-shm`` index
    (``_without_index``): as immutable, a snapshot nobody else can be writing.

    On a full disk a connection cannot be opened as usual either, reader or writer (see
    ``_without_index``): it is opened without the index, so that history can still be read;
    a write on it raises the ``full`` ``StoreError`` it stands in for.
    """
    shown = _SNAPSHOTS.get(path, path)
    full = None  # the "full" StoreError of the usual opening, when this one stands in for it
    try:
        db = _open(path, read_only)
    except (sqlite3.Error, OSError) as exc:
        translated = _translated(exc, shown)
        if translated is exc:
            raise  # not a problem of the file: as it was, not as its own cause
        db = _without_index(path) if translated.kind == "full" and _is_file(path) else None
        if db is None:
            raise translated from exc
        full = translated
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys=ON")
    try:
        yield db
    except (sqlite3.Error, OSError) as exc:
        translated = _translated(exc, shown)
        if translated is exc:
            raise
        if full is not None and translated.kind != "damaged":
            translated = full  # a write refused by the stand-in: the disk is why
        raise translated from exc
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
            db = _without_index(path) or _immutable(path)
    db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA foreign_keys=ON")
        # Safe with WAL: a power cut can lose the last writes, never corrupt the file.
        db.execute("PRAGMA synchronous=NORMAL")
        # The first read maps the WAL index (-shm): on a full disk it fails here, in _open,
        # where ``connect`` can still open the store another way.
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except BaseException:
        db.close()
        raise
    return db


def _without_index(path: Path) -> sqlite3.Connection | None:
    """A connection that reads the store at ``path`` without its ``-shm`` file, or None.

    In WAL mode every connection maps the ``-shm`` index, and the first one after all have
    closed truncates it and grows it again: on a full disk that fails ("disk I/O error"), for
    readers too, and a read-only folder cannot hold one at all. When the ``-wal`` file is
    absent or empty the main file holds every commit (and nobody can write meanwhile: a
    writer needs the index too), so it is opened as immutable, taking no lock. When the
    ``-wal`` holds commits and the folder can be written (a full disk), exclusive locking mode
    keeps the index in this process's memory, so SQLite still reads the WAL's commits (the
    main file alone may even be half checkpointed); it holds the file's lock for the
    connection's short life (2 s of patience for another holder). Else None (for a read-only
    folder: ``open_store`` reads a copy with the WAL replayed)."""
    if not _wal_holds_commits(path):
        return _immutable(path)
    if not os.access(path.parent, os.W_OK):
        return None
    try:
        db = sqlite3.connect(path, timeout=2.0, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        db.execute("PRAGMA locking_mode=EXCLUSIVE")  # before the first read: no -shm ever
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.Error:
        db.close()
        return None
    return db


def _immutable(path: Path) -> sqlite3.Connection:
    uri = f"file:{quote(str(path.resolve()))}?immutable=1"
    return sqlite3.connect(uri, uri=True, isolation_level=None)


def _wal_holds_commits(path: Path) -> bool:
    try:
        return path.with_name(f"{path.name}-wal").stat().st_size > 0
    except OSError:
        return False


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _translated(exc: BaseException, path: Path) -> BaseException:
    """``exc`` as a ``StoreError`` when it is a problem of the file, else ``exc`` itself."""
    return store_error(exc, path) or exc


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN ... COMMIT, or ROLLBACK on any error (connections are in autocommit mode)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have rolled back already
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
