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

``RunStore`` is the one class to construct. Its parts live beside it: ``schema`` (the
tables, connections), ``records`` (``RunRecord``, statuses), ``lifecycle`` (the runner's and
worker's status changes), ``metric_writes`` (the worker's metrics) and ``metric_reads``
(what views read back).
"""

from __future__ import annotations

import os
from pathlib import Path

from bn_core.runs.lifecycle import RunLifecycle
from bn_core.runs.metric_reads import MetricReads
from bn_core.runs.metric_writes import MetricWrites
from bn_core.runs.records import (
    ACTIVE,
    BATCH_FIELDS,
    EPOCH_FIELDS,
    FINISHED,
    STATUSES,
    RunRecord,
    default_home,
)
from bn_core.runs.schema import create_tables

__all__ = [
    "ACTIVE",
    "BATCH_FIELDS",
    "EPOCH_FIELDS",
    "FINISHED",
    "STATUSES",
    "RunRecord",
    "RunStore",
    "default_home",
]


class RunStore(RunLifecycle, MetricWrites, MetricReads):
    """All reads and writes of the run store. Cheap to create; safe to share across threads
    (each call opens its own short-lived connection)."""

    def __init__(self, home: str | os.PathLike | None = None):
        self.home = Path(home) if home is not None else default_home()
        self.home.mkdir(parents=True, exist_ok=True)
        self.path = self.home / "runs.sqlite"
        create_tables(self.path)
