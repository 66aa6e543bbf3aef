"""The window-replay queue: the ``replay_jobs`` table, one row per run whose replay was asked for.

A replay (``bn_core.runs.replays.job``, a TensorFlow process like a run's worker) is a job of
the job runner: ``queue_replays`` queues it, the runner claims it (``claim_replay``) and starts
it on its backend, the replay process takes it (``take_replay``), beats its heartbeat and
finishes it ``done`` or ``failed`` with a one-line error. Statuses
(``bn_core.vocabulary.ReplayStatus``)::

    queued -> running -> done | failed        (queue_replays again: back to queued)

A ``running`` job with no ``started_at`` is claimed by a runner (``owner`` is the runner's)
whose process has not taken it yet; once taken, ``owner``/``pid`` are the replay process's.

**One limit for both kinds.** Training runs that are ``starting``/``running`` and replay jobs
that are ``running`` count against the same ``max_active`` (``active_jobs``), so a *Replay all*
of many runs never starts more TensorFlow processes than the runner's concurrency allows.

**One queue, oldest first.** Queued runs and queued replays are started in the order they were
queued (``created_at``); on a tie the training run goes first, and replays queued together go
by run id. ``claim_next`` (``lifecycle``) holds a run back while an older replay waits
(``replay_goes_first``); ``claim_replay`` holds a replay back while an older run waits. Runs
queued for a Ray cluster are another queue: replays (which run here) neither wait for them
nor hold them back.

``ReplayQueue`` is one part of ``RunStore``; construct that.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from bn_core.runs.store import owner as owners
from bn_core.vocabulary import REPLAY_ENDS, STARTED, ReplayStatus, RunStatus

_STARTED_MARKS = ",".join("?" * len(STARTED))  # status IN (...) of runs a process holds


@dataclass(frozen=True)
class ReplayJob:
    """One row of ``replay_jobs``; ``ahead`` only for a queued job: how many queued jobs, runs
    and replays, will start before it."""

    run_id: int
    status: str  # a ReplayStatus value, as stored
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat: float | None
    pid: int | None
    owner: str | None
    error: str | None
    ahead: int | None = None


def active_jobs(db: sqlite3.Connection, backend: str = "local") -> int:
    """What ``backend``'s limit counts: locally, training runs starting or running plus
    replays running (they share this machine's cores); on another backend (``ray``), its
    training runs starting or running."""
    if backend != "local":
        row = db.execute(
            f"SELECT COUNT(*) FROM runs WHERE status IN ({_STARTED_MARKS}) AND backend = ?",
            (*STARTED, backend),
        ).fetchone()
        return int(row[0])
    row = db.execute(
        f"SELECT (SELECT COUNT(*) FROM runs WHERE status IN ({_STARTED_MARKS})"
        " AND backend IS NULL)"
        " + (SELECT COUNT(*) FROM replay_jobs WHERE status = ?)",
        (*STARTED, ReplayStatus.RUNNING),
    ).fetchone()
    return int(row[0])


def replay_goes_first(db: sqlite3.Connection, run_created_at: float) -> bool:
    """Whether a queued replay is older than a queued run queued at ``run_created_at``."""
    row = db.execute(
        "SELECT 1 FROM replay_jobs WHERE status = ? AND created_at < ? LIMIT 1",
        (ReplayStatus.QUEUED, run_created_at),
    ).fetchone()
    return row is not None


def _exiting(db: sqlite3.Connection, pids: Collection[int]) -> int:
    """How many of ``pids`` (live processes) hold no running replay job: they are ending."""
    if not pids:
        return 0
    held = db.execute(
        "SELECT COUNT(DISTINCT pid) FROM replay_jobs WHERE status = ?"
        f" AND pid IN ({','.join('?' * len(pids))})",
        (ReplayStatus.RUNNING, *pids),
    ).fetchone()[0]
    return len(set(pids)) - int(held)


@contextlib.contextmanager
def _write_lock(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT: take the write lock before reading what decides a write."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class ReplayQueue:
    """Rows of ``replay_jobs``: queued by the page, claimed by a runner, held by a process."""

    connect: Any  # RunStore.connect

    def queue_replays(self, run_ids: Iterable[int]) -> list[int]:
        """Queue a replay of each run; returns the ids queued now, in order. A job that
        ended (``done``/``failed``) is queued again, afresh; one queued or running is left
        alone, and so is an id with no run."""
        now, queued = time.time(), []
        with self.connect() as db, _write_lock(db):
            for run_id in dict.fromkeys(int(i) for i in run_ids):
                cur = db.execute(
                    "INSERT INTO replay_jobs (run_id, status, created_at)"
                    " SELECT id, ?, ? FROM runs WHERE id = ?"
                    " ON CONFLICT (run_id) DO UPDATE SET status = excluded.status,"
                    " created_at = excluded.created_at, started_at = NULL, finished_at = NULL,"
                    " heartbeat = NULL, pid = NULL, owner = NULL, error = NULL"
                    f" WHERE replay_jobs.status IN ({','.join('?' * len(REPLAY_ENDS))})",
                    (ReplayStatus.QUEUED, now, run_id, *REPLAY_ENDS),
                )
                if cur.rowcount == 1:
                    queued.append(run_id)
        return queued

    def claim_replay(
        self, max_active: int, owner: str | None = None, pids: Collection[int] = ()
    ) -> int | None:
        """Move the next queued replay to ``running`` (held by ``owner``, the claiming
        runner, until its process takes it) if fewer than ``max_active`` jobs are active and
        no older training run waits; return its run id. One write transaction, like
        ``claim_next``, so runners sharing a store never exceed the limit together.

        ``pids``: the replay processes the caller started that are still alive. Those whose
        job has ended already (TensorFlow is still unloading) count as active too, so the
        limit holds for processes, not only for rows; counted in the same transaction, so a
        job that ends meanwhile is counted once."""
        with self.connect() as db, _write_lock(db):
            job = db.execute(
                "SELECT run_id, created_at FROM replay_jobs WHERE status = ?"
                " ORDER BY created_at, run_id LIMIT 1",
                (ReplayStatus.QUEUED,),
            ).fetchone()
            if job is None or active_jobs(db) + _exiting(db, pids) >= max_active:
                return None
            older_run = db.execute(
                "SELECT 1 FROM runs WHERE status = ? AND backend IS NULL"
                " AND created_at <= ? LIMIT 1",
                (RunStatus.QUEUED, job["created_at"]),
            ).fetchone()
            if older_run is not None:
                return None
            db.execute(
                "UPDATE replay_jobs SET status = ?, owner = ?, heartbeat = ?,"
                " started_at = NULL, pid = NULL WHERE run_id = ?",
                (ReplayStatus.RUNNING, owner, time.time(), job["run_id"]),
            )
            return int(job["run_id"])

    def record_replay_pid(self, run_id: int, pid: int, owner: str | None) -> None:
        """The runner ``owner`` started job ``run_id``'s process ``pid`` (unless the process
        has taken the job already: then it wrote its pid itself)."""
        with self.connect() as db:
            db.execute(
                "UPDATE replay_jobs SET pid = ? WHERE run_id = ? AND status = ?"
                " AND started_at IS NULL AND owner IS ?",
                (pid, run_id, ReplayStatus.RUNNING, owner),
            )

    def take_replay(self, run_id: int, owner: str, pid: int) -> bool | None:
        """The replay process ``owner`` (pid ``pid``) takes run ``run_id``'s job.

        True: it holds the job now (claimed for it by a runner, or, for a replay started by
        hand, queued, ended or not there yet). False: another process holds it and is not
        known to be dead: leave it. None: there is no such run (nothing to hold)."""
        now = time.time()
        with self.connect() as db, _write_lock(db):
            if db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                return None
            job = db.execute(
                "SELECT status, started_at, owner FROM replay_jobs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if (
                job is not None
                and job["status"] == ReplayStatus.RUNNING
                and job["started_at"] is not None
                and owners.alive(job["owner"]) is not False
            ):
                return False
            db.execute(
                "INSERT INTO replay_jobs"
                " (run_id, status, created_at, started_at, heartbeat, pid, owner)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id) DO UPDATE SET status = excluded.status,"
                " started_at = excluded.started_at, finished_at = NULL,"
                " heartbeat = excluded.heartbeat, pid = excluded.pid, owner = excluded.owner,"
                " error = NULL",
                (run_id, ReplayStatus.RUNNING, now, now, now, pid, owner),
            )
            return True

    def replay_heartbeat(self, run_id: int, owner: str) -> bool:
        """Refresh the heartbeat of the job ``owner`` holds; False if it holds it no more."""
        with self.connect() as db:
            cur = db.execute(
                "UPDATE replay_jobs SET heartbeat = ? WHERE run_id = ? AND status = ?"
                " AND owner = ?",
                (time.time(), run_id, ReplayStatus.RUNNING, owner),
            )
            return cur.rowcount == 1

    def finish_replay(
        self, run_id: int, status: str, error: str | None = None, owner: str | None = None
    ) -> bool:
        """End running job ``run_id`` as ``done`` or ``failed`` (with its one-line ``error``);
        with ``owner``, only while that process still holds it. Returns whether it ended."""
        if status not in REPLAY_ENDS:
            raise ValueError(f"a replay ends done or failed. Received: {status!r}")
        sql = (
            "UPDATE replay_jobs SET status = ?, error = ?, finished_at = ?"
            " WHERE run_id = ? AND status = ?"
        )
        args: list[Any] = [status, error, time.time(), run_id, ReplayStatus.RUNNING]
        if owner is not None:
            sql, args = sql + " AND owner = ?", [*args, owner]
        with self.connect() as db:
            return db.execute(sql, args).rowcount == 1

    def replay_jobs(
        self, run_ids: Iterable[int] | None = None, statuses: tuple[str, ...] | None = None
    ) -> dict[int, ReplayJob]:
        """The jobs of ``run_ids`` (default: all), optionally only those in ``statuses``,
        by run id; a queued job's ``ahead`` counts the queued runs and replays before it in
        the order ``claim_next``/``claim_replay`` start them."""
        sql = (
            "SELECT j.*, CASE WHEN j.status = ? THEN"
            " (SELECT COUNT(*) FROM runs r WHERE r.status = ? AND r.backend IS NULL"
            "  AND r.created_at <= j.created_at)"
            " + (SELECT COUNT(*) FROM replay_jobs q WHERE q.status = ?"
            "  AND (q.created_at < j.created_at"
            "   OR (q.created_at = j.created_at AND q.run_id < j.run_id)))"
            " END AS ahead FROM replay_jobs j WHERE 1=1"
        )
        args: list[Any] = [ReplayStatus.QUEUED, RunStatus.QUEUED, ReplayStatus.QUEUED]
        if isinstance(statuses, str):  # one status, not its letters
            statuses = (statuses,)
        for column, values in (("j.run_id", run_ids), ("j.status", statuses)):
            if values is not None:
                if column == "j.run_id":
                    values = [int(v) for v in values]
                else:  # ValueError for one that is no replay status
                    values = [ReplayStatus.parse(v) for v in values]
                sql += f" AND {column} IN ({','.join('?' * len(values))})"
                args += values
        with self.connect() as db:
            rows = db.execute(sql + " ORDER BY j.run_id", args).fetchall()
        names = {field.name for field in dataclasses.fields(ReplayJob)}
        # Columns this version does not know (a store shared with a newer tool) are ignored.
        return {
            row["run_id"]: ReplayJob(**{k: v for k, v in dict(row).items() if k in names})
            for row in rows
        }
