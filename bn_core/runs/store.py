"""The run store: runs, their status and their metrics in one embedded SQLite file.

Location: ``$BN_LAB_HOME/runs.sqlite`` (default ``./.bn_lab/``), so a Docker volume keeps it.
WAL mode lets the UI read while a worker writes; each run has exactly one writer of its
metrics (its worker), and status changes are guarded by ``WHERE status = ...`` so two
processes never both claim a run. Values are plain SQL and JSON, never pickle.

Run statuses: ``queued`` -> ``starting`` -> ``running`` -> one of ``completed``,
``cancelled``, ``diverged``, ``failed`` (a run's own end) or ``interrupted`` (its process
vanished: killed, crashed, or the machine restarted). Metrics recorded before the end are
always kept.

Runs trained with probes (``probe_every`` > 0, see ``bn_core.nn.probes``) also fill
``probe_steps`` (step, probe-batch accuracy), ``probe_percentiles`` (15/50/85th percentiles
per site, of the whole layer and of one unit), ``grad_norms`` (per linear layer) and
``mode_gap`` (per epoch); like every metric table they go when their run is deleted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bn_core.config import TrainConfig

ACTIVE = ("queued", "starting", "running")
FINISHED = ("completed", "cancelled", "diverged", "failed", "interrupted")
STATUSES = ACTIVE + FINISHED
BATCH_FIELDS = ("step", "epoch", "batch", "epoch_progress", "loss", "accuracy", "t")
EPOCH_FIELDS = (
    "epoch",
    "step",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "seconds",
    "images_per_second",
    "t",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,     -- also the queue order
    group_id TEXT NOT NULL,                   -- runs started together (one click, one sweep)
    variant TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config_json TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    heartbeat REAL,
    pid INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    data_source TEXT,
    steps_per_epoch INTEGER,
    total_steps INTEGER,
    test_loss REAL,
    test_accuracy REAL
);
CREATE TABLE IF NOT EXISTS batch_metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL, epoch INTEGER NOT NULL, batch INTEGER NOT NULL,
    epoch_progress REAL NOT NULL, loss REAL, accuracy REAL, t REAL NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS epoch_metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL, step INTEGER NOT NULL, loss REAL, accuracy REAL,
    val_loss REAL, val_accuracy REAL, seconds REAL, images_per_second REAL, t REAL NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status);
-- Probes (bn_core.nn.probes, only for runs with probe_every > 0). Added later than the tables
-- above: CREATE ... IF NOT EXISTS upgrades an existing store in place.
CREATE TABLE IF NOT EXISTS probe_steps (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL, epoch_progress REAL NOT NULL,
    accuracy REAL,                            -- on the probe batch, inference mode
    t REAL NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS probe_percentiles (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL, site TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('layer', 'unit')),
    p15 REAL, p50 REAL, p85 REAL,             -- of the activation's input
    PRIMARY KEY (run_id, step, site, scope)
);
CREATE TABLE IF NOT EXISTS grad_norms (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL, layer TEXT NOT NULL, norm REAL,
    PRIMARY KEY (run_id, step, layer)
);
CREATE TABLE IF NOT EXISTS mode_gap (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    inference REAL, batch_stats REAL,         -- validation accuracy in each BN mode
    PRIMARY KEY (run_id, epoch)
);
"""


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN ... COMMIT, or ROLLBACK on any error (connections are in autocommit mode)."""
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def default_home() -> Path:
    return Path(os.environ.get("BN_LAB_HOME") or ".bn_lab")


@dataclass(frozen=True)
class RunRecord:
    """One row of ``runs``, with its config parsed."""

    id: int
    group_id: str
    variant: str
    seed: int
    config: TrainConfig
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat: float | None
    pid: int | None
    cancel_requested: bool
    error: str | None
    data_source: str | None
    steps_per_epoch: int | None
    total_steps: int | None
    test_loss: float | None
    test_accuracy: float | None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        values = dict(row)
        # Not re-validated: a config stored under older limits must not make listing (and so
        # scheduling) fail; the worker validates it and fails that one run with a clear message.
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        stored = json.loads(values.pop("config_json"))
        config = TrainConfig(**{k: v for k, v in stored.items() if k in known})
        values["cancel_requested"] = bool(values["cancel_requested"])
        return cls(config=config, **values)


class RunStore:
    """All reads and writes of the run store. Cheap to create; safe to share across threads
    (each call opens its own short-lived connection)."""

    def __init__(self, home: str | os.PathLike | None = None):
        self.home = Path(home) if home is not None else default_home()
        self.home.mkdir(parents=True, exist_ok=True)
        self.path = self.home / "runs.sqlite"
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys=ON")
        # Safe with WAL: a power cut can lose the last writes, never corrupt the file.
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            yield db
        finally:
            db.close()

    # -- runs -------------------------------------------------------------------------------

    def create_run(self, config: TrainConfig, group_id: str) -> int:
        config.validate()
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO runs (group_id, variant, seed, config_json, status, created_at)"
                " VALUES (?, ?, ?, ?, 'queued', ?)",
                (group_id, config.variant, config.seed, json.dumps(config.to_dict()), time.time()),
            )
            return int(cur.lastrowid)

    def get(self, run_id: int) -> RunRecord | None:
        with self._connect() as db:
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
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY id", args).fetchall()
        return [RunRecord.from_row(r) for r in rows]

    def latest_group(self) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT group_id FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return row["group_id"] if row else None

    def transition(self, run_id: int, expected: tuple[str, ...], status: str, **fields) -> bool:
        """Set ``status`` (and ``fields``) only if the run is still in one of ``expected``.

        Returns whether it happened: the compare-and-set that keeps two processes from
        both starting, or both ending, the same run.
        """
        assert status in STATUSES, status
        sets = ", ".join(f"{k} = ?" for k in ("status", *fields))
        with self._connect() as db:
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
        with self._connect() as db:
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
        with self._connect() as db:
            db.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*fields.values(), run_id))

    def request_cancel(self, run_id: int) -> None:
        with self._connect() as db:
            db.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,))

    def cancel_requested(self, run_id: int) -> bool:
        with self._connect() as db:
            row = db.execute("SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def delete(self, run_id: int) -> bool:
        """Delete a finished run, its metrics and its saved model; active runs are refused
        (cancel them first)."""
        with self._connect() as db:
            cur = db.execute(
                f"DELETE FROM runs WHERE id = ? AND status IN ({','.join('?' * len(FINISHED))})",
                (run_id, *FINISHED),
            )
            deleted = cur.rowcount == 1
        if deleted:
            self.model_path(run_id).unlink(missing_ok=True)
            # bn_core.views.replay.replay_path (not imported: replay_view imports this module)
            (self.home / "replays" / f"run-{int(run_id)}.json").unlink(missing_ok=True)
        return deleted

    def model_path(self, run_id: int) -> Path:
        """Where the worker saves run ``run_id``'s trained model (it may not exist)."""
        return self.home / "models" / f"run-{int(run_id)}.keras"

    # -- metrics ----------------------------------------------------------------------------

    def add_batch(self, run_id: int, event: dict[str, Any]) -> None:
        row = {**event, "t": time.time()}
        with self._connect() as db:
            db.execute(
                f"INSERT OR REPLACE INTO batch_metrics (run_id, {', '.join(BATCH_FIELDS)})"
                f" VALUES (?, {', '.join('?' * len(BATCH_FIELDS))})",
                (run_id, *(row[k] for k in BATCH_FIELDS)),
            )
            db.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (row["t"], run_id))

    def add_epoch(self, run_id: int, event: dict[str, Any]) -> None:
        row = {**event, "t": time.time()}
        with self._connect() as db:
            db.execute(
                f"INSERT OR REPLACE INTO epoch_metrics (run_id, {', '.join(EPOCH_FIELDS)})"
                f" VALUES (?, {', '.join('?' * len(EPOCH_FIELDS))})",
                (run_id, *(row[k] for k in EPOCH_FIELDS)),
            )
            db.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (row["t"], run_id))

    def add_probe(self, run_id: int, event: dict[str, Any]) -> None:
        """A ``probe`` event (bn_core.nn.probes): its accuracy, percentiles and gradient norms,
        in one transaction (a reader never sees half a probe)."""
        step = event["step"]
        percentiles = [
            (run_id, step, site, scope, *values)
            for site, scopes in event["sites"].items()
            for scope, values in scopes.items()
        ]
        norms = [(run_id, step, layer, norm) for layer, norm in event["grad_norms"].items()]
        with self._connect() as db, _transaction(db):
            db.execute(
                "INSERT OR REPLACE INTO probe_steps (run_id, step, epoch_progress, accuracy, t)"
                " VALUES (?, ?, ?, ?, ?)",
                (run_id, step, event["epoch_progress"], event["probe_accuracy"], time.time()),
            )
            db.executemany(
                "INSERT OR REPLACE INTO probe_percentiles"
                " (run_id, step, site, scope, p15, p50, p85) VALUES (?, ?, ?, ?, ?, ?, ?)",
                percentiles,
            )
            db.executemany(
                "INSERT OR REPLACE INTO grad_norms (run_id, step, layer, norm) VALUES (?, ?, ?, ?)",
                norms,
            )

    def add_mode_gap(self, run_id: int, event: dict[str, Any]) -> None:
        """A ``mode_gap`` event: one epoch's validation accuracy in both BN modes."""
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO mode_gap (run_id, epoch, inference, batch_stats)"
                " VALUES (?, ?, ?, ?)",
                (
                    run_id,
                    event["epoch"],
                    event["val_accuracy_inference"],
                    event["val_accuracy_batch_stats"],
                ),
            )

    def batch_metrics(self, run_ids: list[int]) -> list[dict[str, Any]]:
        return self._metrics("batch_metrics", run_ids, "step")

    def epoch_metrics(self, run_ids: list[int]) -> list[dict[str, Any]]:
        return self._metrics("epoch_metrics", run_ids, "epoch")

    def probe_rows(self, run_ids: list[int]) -> list[dict[str, Any]]:
        """Percentile rows (run_id, step, site, scope, p15, p50, p85) with their probe's
        epoch_progress and accuracy; a probe without percentiles gives one row whose site,
        scope and percentiles are None. By run, step, site, scope."""
        return self._select(
            "SELECT s.run_id, s.step, s.epoch_progress, s.accuracy, p.site, p.scope,"
            " p.p15, p.p50, p.p85 FROM probe_steps s LEFT JOIN probe_percentiles p"
            " ON p.run_id = s.run_id AND p.step = s.step WHERE s.run_id IN ({ids})"
            " ORDER BY s.run_id, s.step, p.site, p.scope",
            run_ids,
        )

    def grad_norm_rows(self, run_ids: list[int]) -> list[dict[str, Any]]:
        """Gradient-norm rows (run_id, step, layer, norm), by run and step."""
        return self._metrics("grad_norms", run_ids, "step, layer")

    def mode_gap_rows(self, run_ids: list[int]) -> list[dict[str, Any]]:
        """Mode-gap rows (run_id, epoch, inference, batch_stats), by run and epoch."""
        return self._metrics("mode_gap", run_ids, "epoch")

    def probed_run_ids(self) -> set[int]:
        """Ids of the runs that have at least one probe."""
        with self._connect() as db:
            return {r[0] for r in db.execute("SELECT DISTINCT run_id FROM probe_steps")}

    def _metrics(self, table: str, run_ids: list[int], order: str) -> list[dict[str, Any]]:
        return self._select(
            f"SELECT * FROM {table} WHERE run_id IN ({{ids}}) ORDER BY run_id, {order}", run_ids
        )

    def _select(self, sql: str, run_ids: list[int]) -> list[dict[str, Any]]:
        """``sql`` with ``{ids}`` replaced by one placeholder per run id: one query."""
        if not run_ids:
            return []
        with self._connect() as db:
            rows = db.execute(sql.format(ids=",".join("?" * len(run_ids))), list(run_ids))
            return [dict(r) for r in rows.fetchall()]

    def result_dicts(self, runs: list[RunRecord]) -> list[dict[str, Any]]:
        """Runs in ``TrainResult.to_dict()`` shape (plus run_id, group_id, seed), for
        ``bn_core.analysis.summary``; one metrics query for all of them."""
        from bn_core.results import HISTORY_KEYS

        per_run: dict[int, list[dict[str, Any]]] = {}
        for row in self.epoch_metrics([run.id for run in runs]):
            per_run.setdefault(row["run_id"], []).append(row)
        return [
            {
                "run_id": run.id,
                "group_id": run.group_id,
                "variant": run.variant,
                "seed": run.seed,
                "status": run.status,
                "test_accuracy": run.test_accuracy,
                "test_loss": run.test_loss,
                "error": run.error,
                "history": {k: [e[k] for e in per_run.get(run.id, [])] for k in HISTORY_KEYS},
                "config": run.config.to_dict(),
            }
            for run in runs
        ]

    def result_dict(self, run: RunRecord) -> dict[str, Any]:
        return self.result_dicts([run])[0]
