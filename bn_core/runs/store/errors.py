"""What can go wrong with the run store's file, as one exception with one line to show.

SQLite and the operating system report trouble with the store as ``sqlite3`` errors or
``OSError``s whose text is meant for programmers ("database or disk is full", "file is not a
database", "attempt to write a readonly database"). ``store_error`` sorts them into kinds a
user can act on, each with a message that names the file and the fix:

``full``      the disk (or the file system holding ``$BN_LAB_HOME``) has no space left;
``readonly``  the file or its folder cannot be written: history can be viewed, nothing started;
``damaged``   the file is not a SQLite database, or its pages are corrupt;
``io``        the OS reported an I/O error reading or writing it;
``newer``     it was written by a newer BN Lab (its schema version is higher than ours);
``home``      ``$BN_LAB_HOME`` itself is unusable (a file, not a folder; no permission; a folder
              that holds no store yet and where none can be created).

Anything else (a locked database past the timeout, a programming error) is not a
``StoreError``: it is left to propagate as it is.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

from bn_core.messages import one_line

KINDS = ("full", "readonly", "damaged", "io", "newer", "home")
FULL_BELOW_MB = 1.0  # an SQLite error with less free space than this is taken for a full disk

# Lower-case fragments of SQLite's messages (sqlite3_errstr) -> kind.
_SQLITE_TEXT = (
    ("database or disk is full", "full"),
    ("disk is full", "full"),
    ("readonly database", "readonly"),
    ("read-only", "readonly"),
    ("file is not a database", "damaged"),
    ("database disk image is malformed", "damaged"),
    ("malformed database schema", "damaged"),
    ("disk i/o error", "io"),
)
_ERRNO = {
    errno.ENOSPC: "full",
    errno.EDQUOT: "full",
    errno.EROFS: "readonly",
    errno.EACCES: "readonly",
    errno.EPERM: "readonly",
    errno.EIO: "io",
}


class StoreError(Exception):
    """A problem with the store's file that a user must fix. ``str(e)`` is one line."""

    def __init__(self, kind: str, message: str, path: Path | None = None):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}. Received: {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.path = path


def free_mb(folder: str | os.PathLike) -> float | None:
    """Megabytes free for this user on the file system holding ``folder`` (None if unknown)."""
    try:
        return shutil.disk_usage(folder).free / 1e6
    except OSError:
        return None


def kind_of(exc: BaseException, path: Path | None = None) -> str | None:
    """The kind of a store problem ``exc`` is, or None when it is not one. With ``path`` (the
    store's file), SQLite's "unable to open database file" for a file that does not exist yet
    is ``home``: its folder cannot hold a new store (there is no history to view)."""
    if isinstance(exc, StoreError):
        return exc.kind
    if isinstance(exc, OSError) and exc.errno in _ERRNO:
        return _ERRNO[exc.errno]
    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        for fragment, kind in _SQLITE_TEXT:
            if fragment in text:
                return kind
        if "unable to open database file" in text:
            if path is not None and not path.exists():
                return "home"  # nothing to open read-only: the folder refused a new file
            return "readonly"  # the usual cause: the folder or the -wal/-shm files not writable
    return None


def store_error(exc: BaseException, path: Path) -> StoreError | None:
    """A ``StoreError`` for ``exc`` raised while using the store at ``path`` (None when
    ``exc`` is not a store problem)."""
    if isinstance(exc, StoreError):
        return exc
    kind = kind_of(exc, path)
    if kind in (None, "io") and isinstance(exc, sqlite3.Error):
        # A full disk does not always say so: in WAL mode SQLite often reports "disk I/O
        # error" (a -wal or -shm file could not grow), and a reader that cannot map the WAL
        # index may even see the bare main file ("no such table"). The disk decides.
        free = free_mb(path.parent)
        if free is not None and free < FULL_BELOW_MB:
            kind = "full"
    if kind is None:
        return None
    detail = one_line(exc)
    if kind == "home":
        detail = f"it cannot hold a new run store: {path.name} cannot be created there, {detail}"
        return StoreError(kind, describe(kind, path.parent, detail), path.parent)
    return StoreError(kind, describe(kind, path, detail), path)


def describe(kind: str, path: Path, detail: str = "") -> str:
    """The one-line message for a problem of ``kind`` with the store at ``path``."""
    if kind == "full":
        free = free_mb(path.parent)
        room = "" if free is None else f"{free:.0f} MB free in {path.parent}; "
        return (
            f"disk full ({room}the run store {path} cannot grow): free some space; "
            "everything recorded so far is kept"
        )
    if kind == "readonly":
        return (
            f"the run store {path} is read-only ({detail}): history can be viewed, but no "
            f"run can start; make {path.parent} and its files writable to train"
        )
    if kind == "damaged":
        return (
            f"the run store {path} is damaged ({detail}): move it aside "
            f"(mv {path} {path}.damaged) to start a new one, or run `bn-lab store check`"
        )
    if kind == "io":
        return f"the disk holding the run store {path} reported an I/O error ({detail})"
    if kind == "newer":
        return (
            f"the run store {path} was written by a newer BN Lab ({detail}): upgrade BN Lab, "
            "or point BN_LAB_HOME at another folder; the file was left untouched"
        )
    return (
        f"BN_LAB_HOME {path} cannot be used as the run store's folder ({detail}): make it a "
        "folder you can write to, or point BN_LAB_HOME at one"
    )
