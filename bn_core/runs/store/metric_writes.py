"""What a worker records while its run trains: batch and epoch metrics, probes, mode gaps.

Each run has exactly one writer of its metrics (its worker). A row for a step (or epoch)
that is already there replaces it. Batch and epoch rows also refresh the run's heartbeat.
``MetricWrites`` is one part of ``RunStore``; construct that.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bn_core.runs.store.records import BATCH_FIELDS, EPOCH_FIELDS
from bn_core.runs.store.schema import transaction


class MetricWrites:
    """Inserts into the metric tables, one call per training event."""

    path: Path  # set by RunStore
    connect: Any  # RunStore.connect: a connection to the store, closed on exit

    def add_batch(self, run_id: int, event: dict[str, Any]) -> None:
        self._add_row("batch_metrics", BATCH_FIELDS, run_id, event)

    def add_epoch(self, run_id: int, event: dict[str, Any]) -> None:
        self._add_row("epoch_metrics", EPOCH_FIELDS, run_id, event)

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
        with self.connect() as db, transaction(db):
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
        with self.connect() as db:
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

    def truncate_metrics(self, run_id: int, epochs: int, steps: int) -> None:
        """Delete what run ``run_id`` recorded after its first ``epochs`` epochs (``steps``
        steps): a run resumed from the checkpoint of that epoch records the rest again (0, 0:
        everything, for a run that starts over)."""
        with self.connect() as db, transaction(db):
            for table in ("batch_metrics", "probe_steps", "probe_percentiles", "grad_norms"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ? AND step > ?", (run_id, steps))
            for table in ("epoch_metrics", "mode_gap"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ? AND epoch > ?", (run_id, epochs))

    def _add_row(
        self, table: str, fields: tuple[str, ...], run_id: int, event: dict[str, Any]
    ) -> None:
        """One row of ``fields`` (``t`` is now) taken from ``event``, and the heartbeat."""
        row = {**event, "t": time.time()}
        with self.connect() as db:
            db.execute(
                f"INSERT OR REPLACE INTO {table} (run_id, {', '.join(fields)})"
                f" VALUES (?, {', '.join('?' * len(fields))})",
                (run_id, *(row[k] for k in fields)),
            )
            db.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (row["t"], run_id))
