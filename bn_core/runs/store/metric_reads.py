"""What the dashboard, the CLI and the analyses read back: metrics and results of runs.

Every read takes a list of run ids and answers with one query, rows as plain dicts ordered
by run and then by step (or epoch). ``MetricReads`` is one part of ``RunStore``; construct that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bn_core.results import HISTORY_KEYS
from bn_core.runs.store.records import RunRecord


class MetricReads:
    """Selects from the metric tables, and results in ``TrainResult.to_dict()`` shape."""

    path: Path  # set by RunStore
    connect: Any  # RunStore.connect: a connection to the store, closed on exit

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
        with self.connect() as db:
            return {r[0] for r in db.execute("SELECT DISTINCT run_id FROM probe_steps")}

    def result_dicts(self, runs: list[RunRecord]) -> list[dict[str, Any]]:
        """Runs in ``TrainResult.to_dict()`` shape (plus run_id, group_id, seed), for
        ``bn_core.analysis.summary``; one metrics query for all of them."""
        per_run: dict[int, list[dict[str, Any]]] = {}
        for row in self.epoch_metrics([run.id for run in runs]):
            per_run.setdefault(row["run_id"], []).append(row)
        steps = self.steps_done([run.id for run in runs])
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
                "steps": steps.get(run.id, 0),
                "images_per_second": run.images_per_second,
                "history": {k: [e[k] for e in per_run.get(run.id, [])] for k in HISTORY_KEYS},
                "config": run.config.to_dict(),
            }
            for run in runs
        ]

    def result_dict(self, run: RunRecord) -> dict[str, Any]:
        return self.result_dicts([run])[0]

    def _metrics(self, table: str, run_ids: list[int], order: str) -> list[dict[str, Any]]:
        return self._select(
            f"SELECT * FROM {table} WHERE run_id IN ({{ids}}) ORDER BY run_id, {order}", run_ids
        )

    def _select(self, sql: str, run_ids: list[int]) -> list[dict[str, Any]]:
        """``sql`` with ``{ids}`` replaced by one placeholder per run id: one query."""
        if not run_ids:
            return []
        with self.connect() as db:
            rows = db.execute(sql.format(ids=",".join("?" * len(run_ids))), list(run_ids))
            return [dict(r) for r in rows.fetchall()]
