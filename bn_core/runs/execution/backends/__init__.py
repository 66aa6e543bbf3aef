"""Where runs execute: the ``Backend`` protocol the job runner schedules onto.

``bn_core.runs.execution.backends.local`` runs each job as a local process (the default: runs
whose ``backend`` column is NULL); ``bn_core.runs.execution.backends.ray_backend`` runs each as
a Ray task on a cluster (``backend = 'ray'``), with the same four methods plus ``capacity()``
(how many runs the cluster has room for: the runner's limit for those runs). The runner keeps
one of each (``JobRunner.backend``, ``JobRunner.cluster``) and imports the Ray one only once a
run waits for it. Three more methods are optional, and the runner calls them when a backend has
them: ``prepare(store)`` when no run is active (get ready for the next one: ``local`` starts a
standby worker), ``close()`` when it stops, and ``start_replay(run_id, store) -> pid`` to run a
queued window replay (``python -m bn_core.runs.replays.job RUN_ID``, judged by
``alive``/``kill`` like a worker until it takes its job); a backend without it leaves replays
queued.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bn_core.runs.store.run_store import RunStore


class Backend(Protocol):
    """Where runs execute. A handle is whatever the backend needs to find the run again."""

    def start(self, run_id: int, store: RunStore) -> int: ...
    def alive(self, pid: int) -> bool: ...
    def terminate(self, pid: int) -> None: ...
    def kill(self, pid: int) -> None: ...
