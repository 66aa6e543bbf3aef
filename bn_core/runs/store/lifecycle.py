"""A run's life in the store: create, list, claim, change status, cancel, delete.
(Over 300 lines: one class; each guarded status change is read beside those it races with.)

The runner (``bn_core.runs.execution.runner``) and the worker
(``bn_core.runs.execution.worker``) move runs through their statuses
(``bn_core.vocabulary.RunStatus``; each status given here is checked by ``RunStatus.parse``:
``ValueError`` for one that is not). Status changes are guarded by ``WHERE status IN (...)``, so two
processes never both claim, or both end, the same run. ``RunLifecycle`` is one part of
``RunStore``; construct that.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from bn_core.config import TrainConfig
from bn_core.runs.store.names import clean_name, default_group_name
from bn_core.runs.store.owner import pid_of
from bn_core.runs.store.records import BACKENDS, RunRecord, read_rows
from bn_core.runs.store.replay_queue import active_jobs, replay_goes_first
from bn_core.runs.store.schema import transaction
from bn_core.vocabulary import RESUMABLE, STARTED, RunStatus, parse_statuses


class RunLifecycle:
    """The ``runs`` table: one row per run, its status and its process."""

    home: Path  # set by RunStore
    path: Path
    connect: Any  # RunStore.connect: a connection to the store, closed on exit
    delete_runs: Any  # RunCleanup.delete_runs
    # {run id: reason} of the damaged rows the last complete listing skipped (None: not listed
    # yet). Replaced, never changed in place: threads share a store.
    _damaged: dict[int, str] | None = None

    def create_run(
        self,
        config: TrainConfig,
        group_id: str,
        *,
        owner: str | None = None,
        group_name: str | None = None,
    ) -> int:
        """Queue one run; with ``owner`` (an owner string, ``bn_core.runs.store.owner``) it is
        created ``running`` instead, owned by that process from its first moment (``study``,
        which trains it itself: no runner can claim it in between)."""
        return self.create_runs([config], group_id, owner=owner, group_name=group_name)[0]

    def create_runs(
        self,
        configs: list[TrainConfig],
        group_id: str,
        *,
        owner: str | None = None,
        group_name: str | None = None,
        backend: str = "local",
    ) -> list[int]:
        """Queue one run per config in one transaction: all of them, or none (a full disk
        half way leaves nothing behind). A new group is named ``group_name`` (else
        ``catalog.default_group_name``); a group that exists keeps its name. ``backend``:
        where a runner executes them (``bn_core.runs.execution.backends``: ``local`` or ``ray``)."""
        for config in configs:
            config.validate()
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
        stored_backend = None if backend == "local" else backend
        now = time.time()
        name = clean_name(group_name) if group_name is not None else None
        status, pid = (RunStatus.RUNNING, pid_of(owner)) if owner else (RunStatus.QUEUED, None)
        beat = now if owner else None
        node = socket.gethostname() if owner else None  # an owned run runs here, from now
        with self.connect() as db, transaction(db):
            db.execute(
                "INSERT OR IGNORE INTO groups (id, name, created_at) VALUES (?, ?, ?)",
                (group_id, name or default_group_name(configs, now), now),
            )
            return [
                int(
                    db.execute(
                        "INSERT INTO runs (group_id, variant, seed, config_json, status,"
                        " created_at, started_at, heartbeat, pid, owner, node, backend)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            group_id,
                            config.variant,
                            config.seed,
                            json.dumps(config.to_dict()),
                            status,
                            now,
                            beat,
                            beat,
                            pid,
                            owner,
                            node,
                            stored_backend,
                        ),
                    ).lastrowid
                )
                for config in configs
            ]

    def get(self, run_id: int) -> RunRecord | None:
        """The run, or None when there is none or its row is damaged (``damaged_runs``)."""
        with self.connect() as db:
            rows = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchall()
        runs = self._read(rows, complete=False)
        return runs[0] if runs else None

    def list_runs(
        self, statuses: Collection[str] | None = None, group_id: str | None = None
    ) -> list[RunRecord]:
        """Runs in creation order, optionally filtered (``ValueError`` for a status that is
        not one). Damaged rows are skipped (and listed by ``damaged_runs``), so one bad row
        never hides the others."""
        sql, args = "SELECT * FROM runs WHERE 1=1", []
        if statuses is not None:
            statuses = parse_statuses(statuses)
            sql += f" AND status IN ({','.join('?' * len(statuses))})"
            args += list(statuses)
        if group_id is not None:
            sql += " AND group_id = ?"
            args.append(group_id)
        with self.connect() as db:
            rows = db.execute(sql + " ORDER BY id", args).fetchall()
        return self._read(rows, complete=statuses is None and group_id is None)

    def damaged_runs(self) -> list[tuple[int, str]]:
        """(id, one-line reason) of each run whose row cannot be read, as the last listing of
        every run found them (one listing first if there was none): no query of its own."""
        if self._damaged is None:
            self.list_runs()
        return sorted((self._damaged or {}).items())

    def _read(self, rows: list, *, complete: bool) -> list[RunRecord]:
        """The runs of ``rows`` that can be read; the damaged ones are remembered for
        ``damaged_runs`` (all of them when ``rows`` are every run, else added)."""
        runs, damaged = read_rows(rows)
        if complete:
            self._damaged = damaged
        elif self._damaged is not None:  # rows seen now: damaged ones added, mended ones gone
            seen = {row["id"] for row in rows}
            kept = {i: why for i, why in self._damaged.items() if i not in seen}
            self._damaged = {**kept, **damaged}
        return runs

    def count_runs(self, statuses: Collection[str]) -> int:
        """How many runs are in one of ``statuses``: one COUNT query, no rows read back."""
        statuses = parse_statuses(statuses)
        marks = ",".join("?" * len(statuses))
        with self.connect() as db:
            row = db.execute(f"SELECT COUNT(*) FROM runs WHERE status IN ({marks})", statuses)
            return int(row.fetchone()[0])

    def latest_group(self) -> str | None:
        with self.connect() as db:
            row = db.execute("SELECT group_id FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return row["group_id"] if row else None

    def transition(
        self,
        run_id: int,
        expected: Collection[str],
        status: str,
        *,
        held_by: str | None = None,
        **fields,
    ) -> bool:
        """Set ``status`` (and ``fields``) only if the run is still in one of ``expected``
        (and, with ``held_by``, still owned by that owner string).

        Returns whether it happened: the compare-and-set that keeps two processes from
        both starting, or both ending, the same run; ``held_by`` keeps a process that lost
        the run (judged dead, and the run resumed by another) from ending the new attempt.
        ``ValueError`` when ``status`` or one of ``expected`` is not a run status.
        """
        status, expected = RunStatus.parse(status), parse_statuses(expected)
        sets = ", ".join(f"{k} = ?" for k in ("status", *fields))
        guard, args = "", []
        if held_by is not None:
            guard, args = " AND owner = ?", [held_by]
        with self.connect() as db:
            cur = db.execute(
                f"UPDATE runs SET {sets} WHERE id = ?"
                f" AND status IN ({','.join('?' * len(expected))}){guard}",
                (status, *fields.values(), run_id, *expected, *args),
            )
            return cur.rowcount == 1

    def beat(self, run_id: int, held_by: str) -> bool:
        """Refresh the heartbeat of run ``run_id`` if ``held_by`` still owns it while it is
        active; False tells the process it has lost the run (and should stop)."""
        with self.connect() as db:
            cur = db.execute(
                "UPDATE runs SET heartbeat = ? WHERE id = ? AND owner = ?"
                f" AND status IN ({','.join('?' * len(STARTED))})",
                (time.time(), run_id, held_by, *STARTED),
            )
            return cur.rowcount == 1

    def claim_next(
        self,
        max_active: int,
        owner: str | None = None,
        backend: str = "local",
        only: Collection[int] | None = None,
    ) -> int | None:
        """Move the oldest queued run of ``backend`` to ``starting`` if fewer than
        ``max_active`` of its jobs are active and no older replay is queued; return its id.
        Locally, runs starting or running and window replays running share the limit
        (``replay_queue``); on ``ray`` only its runs count (the cluster's capacity). One write
        transaction, so two runners sharing a store (an old and a new server, two containers on
        one volume) never exceed the limit. ``owner`` (the claiming runner's,
        ``bn_core.runs.store.owner``) has the run until its worker claims it in turn. ``only``:
        claim none but these runs (a runner that leaves once they end).
        """
        where, args = _backend_where(backend)
        if only is not None:
            ids = [int(i) for i in only] or [-1]
            where += f" AND id IN ({','.join('?' * len(ids))})"
            args = (*args, *ids)
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")  # take the write lock before counting
            try:
                active = active_jobs(db, backend)
                row = db.execute(
                    f"SELECT id, created_at FROM runs WHERE status = ? AND {where}"
                    " ORDER BY id LIMIT 1",
                    (RunStatus.QUEUED, *args),
                ).fetchone()
                # Replays run here: they only go before runs of this machine.
                first = backend == "local" and row is not None and replay_goes_first(db, row[1])
                if active >= max_active or row is None or first:
                    db.execute("COMMIT")
                    return None
                db.execute(
                    "UPDATE runs SET status = ?, heartbeat = ?, owner = ? WHERE id = ?",
                    (RunStatus.STARTING, time.time(), owner, row["id"]),
                )
                db.execute("COMMIT")
                return int(row["id"])
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def move_queued(self, source: str, target: str) -> int:
        """Send the runs still queued for backend ``source`` to ``target`` instead (a cluster
        that is gone: run them locally); returns how many moved."""
        if target not in BACKENDS:
            raise ValueError(f"unknown backend {target!r}: use one of {', '.join(BACKENDS)}")
        where, args = _backend_where(source)
        with self.connect() as db:
            cur = db.execute(
                f"UPDATE runs SET backend = ? WHERE status = ? AND {where}",
                (None if target == "local" else target, RunStatus.QUEUED, *args),
            )
            return cur.rowcount

    def queued_for(self, backend: str) -> int:
        """How many runs wait for ``backend``."""
        where, args = _backend_where(backend)
        with self.connect() as db:
            row = db.execute(
                f"SELECT COUNT(*) FROM runs WHERE status = ? AND {where}", (RunStatus.QUEUED, *args)
            ).fetchone()
        return int(row[0])

    def update(self, run_id: int, **fields: Any) -> None:
        """Set plain columns (pid, heartbeat, data_source, ...) without touching the status
        (``ValueError`` for ``status``: a status changes only by ``transition``)."""
        if "status" in fields:
            raise ValueError(f"update never sets a status (transition does). Received: {fields}")
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.connect() as db:
            db.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*fields.values(), run_id))

    def request_cancel(self, run_id: int) -> None:
        with self.connect() as db:
            db.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,))

    def cancel_requested(self, run_id: int) -> bool:
        with self.connect() as db:
            row = db.execute("SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def delete(self, run_id: int) -> bool:
        """Delete a finished run, its metrics and its saved model; active runs are refused
        (cancel them first). ``RunCleanup.delete_runs`` of one run."""
        return self.delete_runs([run_id]) == [run_id]

    def log_path(self, run_id: int) -> Path:
        """Where run ``run_id``'s worker writes its output (the folder exists)."""
        logs = self.home / "logs"
        logs.mkdir(exist_ok=True)
        return logs / f"run-{int(run_id)}.log"

    def model_path(self, run_id: int) -> Path:
        """Where the worker saves run ``run_id``'s trained model (it may not exist)."""
        return self.home / "models" / f"run-{int(run_id)}.keras"

    def checkpoint_path(self, run_id: int) -> Path:
        """Run ``run_id``'s checkpoint (``bn_core.nn.checkpoint``): written by its worker at
        every epoch end, removed when the run completes or diverges (it may not exist)."""
        return self.home / "checkpoints" / f"run-{int(run_id)}.npz"

    def checkpoint_epoch(self, run_id: int) -> int | None:
        """Epochs done in run ``run_id``'s checkpoint (None: it has none, or none readable)."""
        from bn_core.nn.checkpoint import peek  # numpy only: no TensorFlow

        return peek(self.checkpoint_path(run_id))

    def requeue(self, run_id: int) -> bool:
        """Queue an ended run again (``RESUMABLE``: interrupted, cancelled, failed) in the same
        record, counting the resume; its worker continues from the run's checkpoint, or starts
        over without one. Returns whether it was requeued (not if it had another status)."""
        with self.connect() as db:
            cur = db.execute(
                "UPDATE runs SET status = ?, resumes = resumes + 1, finished_at = NULL,"
                " error = NULL, cancel_requested = 0, pid = NULL, owner = NULL, heartbeat = NULL,"
                " stage = NULL, test_loss = NULL, test_accuracy = NULL"
                f" WHERE id = ? AND status IN ({','.join('?' * len(RESUMABLE))})",
                (RunStatus.QUEUED, run_id, *RESUMABLE),
            )
            return cur.rowcount == 1


def _backend_where(backend: str) -> tuple[str, tuple]:
    """The SQL condition (and its arguments) of runs queued for ``backend``: local runs have
    NULL in ``runs.backend``."""
    return ("backend IS NULL", ()) if backend == "local" else ("backend = ?", (backend,))
