"""The run store: runs, their status and their metrics in one embedded SQLite file.

Location: ``$BN_LAB_HOME/runs.sqlite`` (default ``./.bn_lab/``), so a Docker volume keeps it.
WAL mode lets the UI read while a worker writes; each run has exactly one writer of its
metrics (its worker), and status changes are guarded by ``WHERE status = ...`` so two
processes never both claim a run. Values are plain SQL and JSON, never pickle.

Run statuses (``bn_core.vocabulary.RunStatus``): ``queued`` -> ``starting`` -> ``running``
-> one of ``completed``, ``cancelled``, ``diverged``, ``failed`` (a run's own end) or
``interrupted`` (its process vanished: killed, crashed, or the machine restarted). Metrics
recorded before the end are always kept.

Runs trained with probes (``probe_every`` > 0, see ``bn_core.nn.probes``) also fill
``probe_steps`` (step, probe-batch accuracy), ``probe_percentiles`` (15/50/85th percentiles
per site, of the whole layer and of one unit), ``grad_norms`` (per linear layer) and
``mode_gap`` (per epoch); like every metric table they go when their run is deleted.

``RunStore`` is the one class to construct. Its parts live beside it: ``schema`` (the
tables, connections), ``records`` (``RunRecord``), ``lifecycle`` (the runner's and
worker's status changes), ``catalog`` (names, tags, the group list, pages of runs),
``cleanup`` (deleting and pruning), ``metric_writes`` (the worker's metrics), ``metric_reads``
(what views read back), ``presence`` (which job runners are alive) and ``replay_queue``
(the window-replay jobs, scheduled with the runs).
"""

from __future__ import annotations

import os
from pathlib import Path

from bn_core.runs.store.catalog import RunCatalog
from bn_core.runs.store.cleanup import RunCleanup
from bn_core.runs.store.errors import StoreError
from bn_core.runs.store.health import ensure_sound
from bn_core.runs.store.lifecycle import RunLifecycle
from bn_core.runs.store.metric_reads import MetricReads
from bn_core.runs.store.metric_writes import MetricWrites
from bn_core.runs.store.presence import RunnerPresence
from bn_core.runs.store.records import BATCH_FIELDS, EPOCH_FIELDS, RunRecord, default_home
from bn_core.runs.store.replay_queue import ReplayQueue
from bn_core.runs.store.schema import connect, open_store

__all__ = [
    "BATCH_FIELDS",
    "EPOCH_FIELDS",
    "RunRecord",
    "RunStore",
    "StoreError",
    "default_home",
]


class RunStore(
    RunLifecycle, RunCatalog, RunCleanup, MetricWrites, MetricReads, RunnerPresence, ReplayQueue
):
    """All reads and writes of the run store. Cheap to create; safe to share across threads
    (each call opens its own short-lived connection).

    Opening checks the file's pages first (``health.ensure_sound``: SQLite's ``quick_check``,
    the check ``bn-lab store check --quick`` makes), so that nothing is written into, or read
    from, a damaged store: garbage pages in the middle of the file open fine and are met only
    by whichever statement reads them, so a write elsewhere would succeed. It costs 0.1 s for
    1,000 runs and 0.5 s for 5,000 (a 94 MB file; bench numbers in health.py), once per opening:
    each command, the dashboard's one runner. ``verify=False`` skips it for the processes that
    a runner which has checked starts (a worker, a replay job). Then opening migrates the file to
    the current schema (``bn_core.runs.store.migrations``). A store that cannot be written opens
    ``read_only`` (viewing works; every write raises ``StoreError``); on a full disk it opens
    too (reads work, writes raise the ``full`` ``StoreError`` until there is space); a damaged
    or newer store, or an unusable folder, raises ``StoreError``.
    """

    def __init__(self, home: str | os.PathLike | None = None, *, verify: bool = True):
        self.home = Path(home) if home is not None else default_home()
        self.path = self.home / "runs.sqlite"
        if verify and _is_file(self.path):
            ensure_sound(self.path)  # before open_store, which may migrate (write) the file
        self._read_path, self.read_only = open_store(self.home, self.path)

    def connect(self):
        """A connection to the store (read-only ones for a read-only store), closed on exit."""
        return connect(self._read_path, read_only=self.read_only)


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; False when it cannot even be looked at (``open_store`` then
    says why, in one line)."""
    try:
        return path.is_file()
    except OSError:
        return False
