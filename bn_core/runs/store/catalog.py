"""Finding runs among thousands: group and run names, tags, the group list, a page of runs at
a time. Deleting and pruning them is ``cleanup``'s.
(Over 300 lines: the group list and the pages of runs share one SQL vocabulary of sorts and words.)

Every query here does its filtering, counting, sorting and paging in SQL, so a store of
5,000 runs costs what the rows asked for cost: the group list is one aggregate over an
index (``runs_by_group``, migration 3) and parses no config; a page of runs parses the
configs of that page only.

Names: a group is named when it is created (``create_runs``: the preset's title, else
``names.default_group_name``), a run is unnamed until renamed; both can be renamed (the rules
of ``bn_core.runs.store.names``). A group of an older store has no ``groups`` row: its id is its
name. Tags are stored joined by commas.

Search (``runs_page``): words separated by spaces, all of which must match. ``#123`` (or a
search that is only a number, ``123``) is run 123 exactly, never "runs whose text contains
123"; any other word is a case-insensitive substring of the run's name, variant, group id,
group name, tags or node. ``RunCatalog`` is one part of ``RunStore``; construct that.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bn_core.runs.store.names import clean_name, clean_tags, default_group_name
from bn_core.runs.store.records import RunRecord
from bn_core.runs.store.schema import transaction
from bn_core.vocabulary import ACTIVE, RunStatus, parse_statuses

__all__ = ["SORTS", "GroupRecord", "RunCatalog", "clean_name", "clean_tags", "default_group_name"]

MAX_PAGE = 1000  # runs of one page

# runs_page's sorts -> fixed SQL expressions (``r``: runs, ``g``: groups). Never user text.
SORTS = {
    "id": "r.id",
    "name": "COALESCE(r.name, r.variant || ' seed ' || r.seed) COLLATE NOCASE",
    "group": "COALESCE(g.name, r.group_id) COLLATE NOCASE",
    "variant": "r.variant",
    "seed": "r.seed",
    "status": "r.status",
    "accuracy": "r.test_accuracy",
    "created": "r.created_at",
    "node": "r.node COLLATE NOCASE",
}
_NULLABLE_SORTS = {"accuracy", "node"}
# What a search word is matched against: one text per run (char(31), the unit separator, is
# whitespace to str.split, so no search word spans two fields).
_RUN_TEXT = (
    "COALESCE(r.name, '') || char(31) || r.variant || char(31) || r.group_id || char(31) ||"
    " COALESCE(g.name, '') || char(31) || COALESCE(r.tags, '') || char(31) || COALESCE(r.node, '')"
)
_GROUP_TEXT = "COALESCE(g.name, '') || char(31) || r.group_id"
_RUN_ID = re.compile(r"#(\d+)")


@dataclass(frozen=True)
class GroupRecord:
    """One group of runs (started together: one click, one sweep, one study), aggregated."""

    id: str
    name: str  # its stored name, else its id
    created_at: float  # when its first run was created
    runs: int
    active: int  # queued, starting or running
    completed: int
    variants: tuple[str, ...]  # distinct, in the order they were first queued
    newest_run: int  # its highest run id: groups are listed newest first by it
    queued: int = 0  # of ``active``, those not started yet
    first_run: int = 0  # its lowest run id

    @property
    def label(self) -> str:
        """One line for pickers: "Original study · 2026-12-01 11:26 · 15 runs (#31–45) ·
        3 active · 12 completed" (local time; the date only once when a default name holds it)."""
        when = time.localtime(self.created_at)
        parts = [self.name]
        if not self.name.endswith(time.strftime(" · %m-%d %H:%M", when)):
            parts.append(time.strftime("%Y-%m-%d %H:%M", when))
        # The run ids tell apart two groups of one name queued in the same minute.
        ids = f"#{self.first_run}" if self.runs == 1 else f"#{self.first_run}–{self.newest_run}"
        parts.append(f"{self.runs} run{'s' * (self.runs != 1)} ({ids})")
        if self.active:
            parts.append(f"{self.active} active")
        if self.completed == self.runs:
            parts.append("all completed")
        elif self.completed:
            parts.append(f"{self.completed} completed")
        elif not self.active:
            parts.append("none completed")
        return " · ".join(parts)


def _fold(text: str | None) -> str:
    """Case-insensitive matching beyond ASCII (SQLite's lower() folds ASCII only)."""
    return text.casefold() if isinstance(text, str) else ""


def _words(search: str | None) -> list[str]:
    return (search or "").split()


def ids_json(run_ids: Iterable[int]) -> str:
    """Run ids as one JSON parameter (``json_each``): any number of them, one bound value."""
    return json.dumps(sorted({int(i) for i in run_ids}))


class RunCatalog:
    """Names, tags, the group list, pages of runs."""

    home: Path  # set by RunStore
    connect: Any  # RunStore.connect: a connection to the store, closed on exit
    _read: Any  # RunLifecycle._read: rows -> runs, damaged ones set aside

    # -- groups ---------------------------------------------------------------------------------

    def list_groups(self, search: str | None = None, limit: int | None = None) -> list[GroupRecord]:
        """Groups, newest first; ``search``: words that must all be in the name or id (case
        ignored); at most ``limit``. One aggregate query; no config is parsed."""
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit must be a whole number of at least 1. Received: {limit!r}")
        words = [_fold(word) for word in _words(search)]
        having = " AND ".join(f"instr(bn_fold({_GROUP_TEXT}), ?) > 0" for _ in words)
        return self._groups("1=1", [], having or "1=1", words, limit or -1)  # -1: no limit

    def group(self, group_id: str) -> GroupRecord | None:
        """The group ``group_id``, or None when it has no runs."""
        found = self._groups("r.group_id = ?", [group_id], "1=1", [], 1)
        return found[0] if found else None

    def _groups(self, where: str, args: list, having: str, having_args: list, limit: int):
        marks = ",".join("?" * len(ACTIVE))
        sql = (
            "SELECT r.group_id AS id, g.name AS name, MIN(r.created_at) AS created_at,"
            f" COUNT(*) AS runs, SUM(r.status IN ({marks})) AS active,"
            " SUM(r.status = ?) AS completed, MAX(r.id) AS newest_run,"
            " SUM(r.status = ?) AS queued, MIN(r.id) AS first_run,"
            # each variant with its first run id, in one text: ordered in Python
            " (SELECT group_concat(f.first || ':' || f.variant, char(31)) FROM"
            "  (SELECT variant, MIN(id) AS first FROM runs WHERE group_id = r.group_id"
            "   GROUP BY variant) AS f) AS variants"
            f" FROM runs r LEFT JOIN groups g ON g.id = r.group_id WHERE {where}"
            f" GROUP BY r.group_id HAVING {having} ORDER BY newest_run DESC LIMIT ?"
        )
        with self.connect() as db:
            db.create_function("bn_fold", 1, _fold, deterministic=True)
            counted = (*ACTIVE, RunStatus.COMPLETED, RunStatus.QUEUED)
            rows = db.execute(sql, (*counted, *args, *having_args, limit)).fetchall()
        return [
            GroupRecord(
                id=row["id"],
                name=row["name"] or row["id"],
                created_at=row["created_at"],
                runs=row["runs"],
                active=row["active"],
                completed=row["completed"],
                variants=_variants(row["variants"]),
                newest_run=row["newest_run"],
                queued=row["queued"],
                first_run=row["first_run"],
            )
            for row in rows
        ]

    def latest_finished_group(self) -> str | None:
        """The newest group with at least one completed run (a newer group that was cancelled,
        or is still queued, is skipped), or None."""
        with self.connect() as db:
            row = db.execute(
                "SELECT group_id FROM runs GROUP BY group_id"
                " HAVING SUM(status = ?) > 0 ORDER BY MAX(id) DESC LIMIT 1",
                (RunStatus.COMPLETED,),
            ).fetchone()
        return row[0] if row else None

    def rename_group(self, group_id: str, name: str) -> str:
        """Name group ``group_id`` (``clean_name``); returns the name as stored. ValueError
        when the group has no runs."""
        cleaned = clean_name(name)
        with self.connect() as db, transaction(db):
            first = db.execute(
                "SELECT MIN(created_at) FROM runs WHERE group_id = ?", (group_id,)
            ).fetchone()[0]
            if first is None:
                raise ValueError(f"there is no group {group_id!r}; `bn-lab groups` lists them")
            db.execute(
                "INSERT INTO groups (id, name, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET name = excluded.name",
                (group_id, cleaned, first),
            )
        return cleaned

    # -- runs -----------------------------------------------------------------------------------

    def rename_run(self, run_id: int, name: str | None) -> None:
        """Name run ``run_id`` (``clean_name``); None or blank clears its name."""
        cleaned = None if name is None or not str(name).strip() else clean_name(name, "run name")
        self._set_run_column(run_id, "name", cleaned)

    def set_tags(self, run_id: int, tags: Iterable[str]) -> tuple[str, ...]:
        """Replace run ``run_id``'s tags (``clean_tags``; none clears them); returns them."""
        cleaned = clean_tags(tags)
        self._set_run_column(run_id, "tags", ",".join(cleaned) or None)
        return cleaned

    def _set_run_column(self, run_id: int, column: str, value: str | None) -> None:
        if column not in ("name", "tags"):  # never user text in SQL
            raise ValueError(f"column must be name or tags. Received: {column!r}")
        with self.connect() as db:
            cur = db.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, run_id))
        if cur.rowcount != 1:
            raise ValueError(f"there is no run #{run_id}; `bn-lab runs` lists them")

    def runs_page(
        self,
        *,
        search: str | None = None,
        statuses: Iterable[str] | None = None,
        group_id: str | None = None,
        sort: str = "id",
        descending: bool = True,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[RunRecord], int]:
        """One page of the runs that match (see the module's docstring for ``search``), sorted
        by one of ``SORTS`` (empty values last either way, then by id), and how many match in
        all. Damaged rows count but are skipped (``damaged_runs`` lists them). ``ValueError``
        for a status (``RunStatus.parse``), sort, offset or limit that is not one."""
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}. Received: {sort!r}")
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a whole number of at least 0. Received: {offset!r}")
        if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1 to {MAX_PAGE}. Received: {limit!r}")
        where, args = self._run_filter(search, statuses, group_id)
        order = "DESC" if descending else "ASC"
        keys = [f"{SORTS[sort]} {order}", f"r.id {order}"][: 1 if sort == "id" else 2]
        if sort in _NULLABLE_SORTS:  # empty last either way (SQLite puts NULL first going up)
            keys.insert(0, f"({SORTS[sort]}) IS NULL")
        source = f" FROM runs r LEFT JOIN groups g ON g.id = r.group_id WHERE {where}"
        with self.connect() as db:
            db.create_function("bn_fold", 1, _fold, deterministic=True)
            total = db.execute("SELECT COUNT(*)" + source, args).fetchone()[0]
            # Ids first: sorting whole rows would carry every config through the sort.
            ids = [
                row[0]
                for row in db.execute(
                    f"SELECT r.id{source} ORDER BY {', '.join(keys)} LIMIT ? OFFSET ?",
                    (*args, limit, offset),
                )
            ]
            rows = db.execute(
                "SELECT * FROM runs WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(ids),),
            ).fetchall()
        position = {run_id: i for i, run_id in enumerate(ids)}
        runs = self._read(sorted(rows, key=lambda row: position[row["id"]]), complete=False)
        return runs, int(total)

    @staticmethod
    def _run_filter(search, statuses, group_id) -> tuple[str, list]:
        """The WHERE clause (and its arguments) of ``runs_page``."""
        clauses, args = ["1=1"], []
        if statuses is not None:
            statuses = parse_statuses(statuses)
            clauses.append(f"r.status IN ({','.join('?' * len(statuses))})")
            args += list(statuses)
        if group_id is not None:
            clauses.append("r.group_id = ?")
            args.append(group_id)
        words = _words(search)
        for word in words:
            if _RUN_ID.fullmatch(word) or (len(words) == 1 and word.isdecimal()):
                run_id = int(word.lstrip("#"))
                clauses.append("r.id = ?")
                args.append(run_id if run_id < 2**63 else -1)  # past SQLite's integers: none
            else:
                clauses.append(f"instr(bn_fold({_RUN_TEXT}), ?) > 0")
                args.append(_fold(word))
        return " AND ".join(clauses), args

    def steps_done(self, run_ids: list[int]) -> dict[int, int]:
        """{run id: its last recorded batch step} for those of ``run_ids`` with any (one
        query, over the batch table's primary key)."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT run_id, MAX(step) FROM batch_metrics"
                " WHERE run_id IN (SELECT value FROM json_each(?)) GROUP BY run_id",
                (ids_json(run_ids),),
            ).fetchall()
        return {int(run_id): int(step) for run_id, step in rows}


def _variants(text: str | None) -> tuple[str, ...]:
    """The "first run id:variant" items of ``_groups`` -> the variants, by their first run."""
    pairs = [item.split(":", 1) for item in (text or "").split("\x1f") if item]
    return tuple(variant for _, variant in sorted(pairs, key=lambda pair: int(pair[0])))
