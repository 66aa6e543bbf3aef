"""Is the run store's file sound? SQLite's own checks of its pages, and the rows it skips.

``file_problems`` runs ``PRAGMA quick_check`` (every page and b-tree readable, in order) or the
fuller ``integrity_check`` (it also matches every index to its table) on a read-only
connection, so it never changes the file and works on a read-only, newer or full store.
Measured on bench/synthetic_store.py's stores (2 cores, file in the page cache; a cold cache
costs ~5x): 1,000 runs (19 MB) quick_check 0.10-0.13 s, integrity_check 0.24 s; 5,000 runs
(94 MB) quick_check 0.5-0.6 s, integrity_check 1.5 s.
``ensure_sound`` turns the first problem into the ``damaged`` ``StoreError`` that opening a
``RunStore`` raises (once per opening: each command, the dashboard's runner): a store whose
pages are garbage in the middle still opens, and would otherwise fail later, on whichever page
a statement happens to read, while writes that touch other pages succeed.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bn_core.runs.store.errors import StoreError, describe
from bn_core.runs.store.migrations import version_of
from bn_core.runs.store.records import read_rows
from bn_core.runs.store.schema import connect

MAX_LISTED = 3  # problems named in a message; the rest are counted


@dataclass(frozen=True)
class Health:
    """What ``check`` found: SQLite's complaints about the file, and the damaged runs."""

    path: Path
    version: int
    runs: int | None  # rows of ``runs``, damaged ones included (None: unreadable)
    file: list[str]  # SQLite's messages ("ok" left out): empty when the pages are sound
    damaged: list[tuple[int, str]]  # (run id, reason)

    @property
    def ok(self) -> bool:
        return not self.file and not self.damaged


def file_problems(path: Path, *, full: bool = False) -> list[str]:
    """SQLite's messages about the pages of the store at ``path``: [] when it is sound.
    ``StoreError`` (kind ``damaged``) when it is not a database at all."""
    pragma = "integrity_check" if full else "quick_check"
    with connect(path, read_only=True) as db:
        try:
            lines = [row[0] for row in db.execute(f"PRAGMA {pragma}")]
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise  # as a StoreError: there are no pages to speak of
            return [f"{pragma} stopped: {exc}"]  # a page so broken SQLite cannot go on
    return [] if lines == ["ok"] else lines


def ensure_sound(path: Path) -> None:
    """Raise the ``damaged`` ``StoreError`` for the store at ``path`` if ``quick_check``
    finds a problem with its pages."""
    problems = file_problems(path)
    if problems:
        raise StoreError("damaged", describe("damaged", path, _summary(problems)), path)


def check(path: Path, *, full: bool = True) -> Health:
    """Everything wrong with the store at ``path``, read-only: its pages (``full``:
    ``integrity_check``, else ``quick_check``), then each row of ``runs``."""
    problems = file_problems(path, full=full)
    with connect(path, read_only=True) as db:
        version = version_of(db)
        has_runs = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'"
        ).fetchone()
        try:
            rows = db.execute("SELECT * FROM runs ORDER BY id").fetchall() if has_runs else []
        except sqlite3.DatabaseError:
            if not problems:
                raise
            rows = None  # the pages of ``runs`` are among the damaged ones: SQLite said so
    if rows is None:
        return Health(path, version, None, problems, [])
    _, damaged = read_rows(rows)
    return Health(path, version, len(rows), problems, sorted(damaged.items()))


def _summary(problems: list[str]) -> str:
    """SQLite's first messages, one line: "msg; msg; msg (and 4 more)"."""
    shown = "; ".join(" ".join(p.split()) for p in problems[:MAX_LISTED])
    more = len(problems) - MAX_LISTED
    return f"{shown} (and {more} more)" if more > 0 else shown
