"""Runs whose process is gone: ``dead`` (is it?) and ``reap`` (end them without a runner).

A run that is ``starting`` or ``running`` has an owner (``bn_core.runs.store.owner``); when that
process is gone, nothing will ever end the run but someone who looks. The job runner looks at
every pass (``JobRunner.tick``, which also judges heartbeats and kills hung workers);
``reap`` is the same look for commands that run without a runner (``bn-lab runs``).
"""

from __future__ import annotations

import os
import time

from bn_core.runs.execution.backends import Backend
from bn_core.runs.store import owner
from bn_core.runs.store.records import RunRecord
from bn_core.runs.store.run_store import RunStore
from bn_core.vocabulary import STARTED, RunStatus


def dead(run: RunRecord, backend: Backend | None = None) -> bool:
    """Whether the process that has ``run`` is known to be gone.

    By its owner when it has one (any process of this machine: a worker, a study). A handle
    that is not the owner's pid (a worker the owning runner started, which has not claimed
    the run yet; a Ray task's handle, whose relay runs in the owner) is also checked through
    ``backend``, which started it, but only in the owner's own process (or for a run with
    no owner recorded): only there does ``backend`` know it. Runs owned on other machines
    are never "dead" here: their heartbeats tell."""
    if owner.alive(run.owner) is False:
        return True
    if run.handle is None or backend is None or owner.pid_of(run.owner) == run.handle:
        return False
    if run.owner is not None and owner.pid_of(run.owner) != os.getpid():
        return False  # another process's handle: that process judges it
    return not backend.alive(run.handle)


def reap(store: RunStore) -> list[int]:
    """Mark ``interrupted`` the active runs whose owning process on this machine is gone,
    with no runner needed (``bn-lab runs`` calls it); returns their ids."""
    ended = []
    for run in store.list_runs(STARTED):
        if (
            run.owner is not None
            and dead(run)
            and store.transition(
                run.id,
                STARTED,
                RunStatus.CANCELLED if run.cancel_requested else RunStatus.INTERRUPTED,
                error="its process exited; metrics up to then are kept",
                finished_at=time.time(),
            )
        ):
            ended.append(run.id)
    return ended
