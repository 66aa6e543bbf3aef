"""A run's life in the store: create, list, claim, change status, cancel, delete.

The runner (``bn_core.runs.runner``) and the worker (``bn_core.runs.worker``) move runs
through their statuses (see ``bn_core.runs.records``). Status changes are guarded by
``WHERE status IN (...)``, so two processes never both claim, or both end, the same run.
``RunLifecycle`` is one part of ``RunStore``; construct that.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bn_core.config import TrainConfig
from bn_core.runs.records import FINISHED, STATUSES, RunRecord
from bn_core.runs.schema import connect


class RunLifecycle:
    """The ``runs`` table: one row per run, its status and its process."""

    home: Path  # set by RunStore
    path: Path

    def create_run(self, config: TrainConfig, group_id: str) -> int:
        config.validate()
        with connect(self.path) as db:
            cur = db.execute(
                "INSERT INTO runs (group_id, variant, seed, config_json, status, created_at)"
                " VALUES (?, ?, ?, ?, 'queued', ?)",
                (group_id, config.variant, config.seed, json.dumps(config.to_dict()), time.time()),
            )
            return int(cur.lastrowid)

    def get(self, run_id: int) -> RunRecord | None:
        with connect(self.path) as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return RunRecord.from_row(row) if row else None

    def list_runs(
        self, statuses: tuple[str, ...] | None = None, group_id: str | None = None
    ) -> list[RunRecord]:
        """Runs in creation order, optionally filtered."""
        sql, args = "SELECT * FROM runs WHERE 1=1", []
        if statuses is not None:
            sql += f" AND status IN ({','.join('?' * len(statuses))})"
            args += list(statuses)
        if group_id is not None:
            sql += " AND group_id = ?"
            args.append(group_id)
        with connect(self.path) as db:
            rows = db.execute(sql + " ORDER BY id", args).fetchall()
        return [RunRecord.from_row(r) for r in rows]

    def latest_group(self) -> str | None:
        with connect(self.path) as db:
            row = db.execute("SELECT group_id FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return row["group_id"] if row else None

    def transition(self, run_id: int, expected: tuple[str, ...], status: str, **fields) -> bool:
        """Set ``status`` (and ``fields``) only if the run is still in one of ``expected``.

        Returns whether it happened: the compare-and-set that keeps two processes from
        both starting, or both ending, the same run.
        """
        assert status in STATUSES, status
        sets = ", ".join(f"{k} = ?" for k in ("status", *fields))
        with connect(self.path) as db:
            cur = db.execute(
                f"UPDATE runs SET {sets} WHERE id = ?"
                f" AND status IN ({','.join('?' * len(expected))})",
                (status, *fields.values(), run_id, *expected),
            )
            return cur.rowcount == 1

    def claim_next(self, max_active: int) -> int | None:
        """Move the oldest queued run to ``starting`` if fewer than ``max_active`` runs are
        starting or running; return its id. One write transaction, so two runners sharing a
        store (an old and a new server, two containers on one volume) never exceed the limit.
        """
        with connect(self.path) as db:
            db.execute("BEGIN IMMEDIATE")  # take the write lock before counting
            try:
                active = db.execute(
                    "SELECT COUNT(*) FROM runs WHERE status IN ('starting', 'running')"
                ).fetchone()[0]
                row = db.execute(
                    "SELECT id FROM runs WHERE status = 'queued' ORDER BY id LIMIT 1"
                ).fetchone()
                if active >= max_active or row is None:
                    db.execute("COMMIT")
                    return None
                db.execute(
                    "UPDATE runs SET status = 'starting', heartbeat = ? WHERE id = ?",
                    (time.time(), row["id"]),
                )
                db.execute("COMMIT")
                return int(row["id"])
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def update(self, run_id: int, **fields: Any) -> None:
        """Set plain columns (pid, heartbeat, data_source, ...) without touching the status."""
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        with connect(self.path) as db:
            db.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*fields.values(), run_id))

    def request_cancel(self, run_id: int) -> None:
        with connect(self.path) as db:
            db.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,))

    def cancel_requested(self, run_id: int) -> bool:
        with connect(self.path) as db:
            row = db.execute("SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def delete(self, run_id: int) -> bool:
        """Delete a finished run, its metrics and its saved model; active runs are refused
        (cancel them first)."""
        with connect(self.path) as db:
            cur = db.execute(
                f"DELETE FROM runs WHERE id = ? AND status IN ({','.join('?' * len(FINISHED))})",
                (run_id, *FINISHED),
            )
            deleted = cur.rowcount == 1
        if deleted:
            self.model_path(run_id).unlink(missing_ok=True)
            # bn_core.runs.replays.replay_path (not imported: that module imports the store)
            (self.home / "replays" / f"run-{int(run_id)}.json").unlink(missing_ok=True)
        return deleted

    def log_path(self, run_id: int) -> Path:
        """Where run ``run_id``'s worker writes its output (the folder exists)."""
        logs = self.home / "logs"
        logs.mkdir(exist_ok=True)
        return logs / f"run-{int(run_id)}.log"

    def model_path(self, run_id: int) -> Path:
        """Where the worker saves run ``run_id``'s trained model (it may not exist)."""
        return self.home / "models" / f"run-{int(run_id)}.keras"
