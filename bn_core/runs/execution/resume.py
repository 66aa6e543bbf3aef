"""Resuming a run: queue an ended run again, in the same record, to continue from its
checkpoint (``bn_core.nn.checkpoint``, written at every epoch end by its worker).

The worker does the rest (``bn_core.runs.execution.worker``): it restores the checkpoint,
deletes the metrics recorded after it, and trains the remaining epochs, so the run's history
reads as if it had never stopped (within 1e-4 of an uninterrupted run on the same CPU). A run
without a checkpoint (killed in its first epoch) starts over. ``JobRunner.resume``, ``bn-lab
resume`` and the Runs page's Resume button all come here.
"""

from __future__ import annotations

from bn_core.config import ConfigError
from bn_core.runs.execution import caps
from bn_core.runs.store.run_store import RunStore
from bn_core.vocabulary import RESUMABLE, RunStatus


def resume(store: RunStore, run_id: int) -> str:
    """Queue run ``run_id`` again (``ConfigError`` when it cannot be: unknown, not
    ``RESUMABLE``, or the queue is full); returns what will happen, in one line."""
    run = store.get(run_id)
    if run is None:
        raise ConfigError(f"there is no run #{run_id} in {store.path}; see `bn-lab runs`")
    if run.status not in RESUMABLE:
        raise ConfigError(
            f"run #{run_id} is {run.status}: only {', '.join(RESUMABLE)} runs can be resumed"
        )
    caps.check_submit(1, store.count_runs((RunStatus.QUEUED,)))
    epoch = store.checkpoint_epoch(run_id)
    if not store.requeue(run_id):
        raise ConfigError(f"run #{run_id} changed status meanwhile; see `bn-lab runs`")
    if epoch is None:
        return f"run #{run_id} queued again: it has no checkpoint yet, so it starts over"
    return (
        f"run #{run_id} queued again: it continues after epoch {epoch} of "
        f"{run.config.epochs} (its checkpoint)"
    )
