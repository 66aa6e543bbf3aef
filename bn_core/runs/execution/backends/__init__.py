"""Where runs execute: the ``Backend`` every backend subclasses, and the runner schedules onto.

``bn_core.runs.execution.backends.local`` runs each job as a local process (the default: runs
whose ``backend`` column is NULL); ``bn_core.runs.execution.backends.ray_backend`` runs each as
a Ray task on a cluster (``backend = 'ray'``). The runner keeps one of each
(``JobRunner.backend``, ``JobRunner.cluster``) and imports the Ray one only once a run waits
for it. It calls every method below on any backend, never asking first whether one exists:
what a backend does not need, it inherits as the documented default.

A *handle* is what ``start`` returns and the runner keeps (in the store's ``runs.pid``
column, see ``RunRecord.handle``) to ask about the run again: a local run's process id, a
Ray run's number of the backend's own. Only the backend that returned it can read it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from bn_core.runs.store.run_store import RunStore


class Backend(ABC):
    """Where runs execute. ``start``, ``alive``, ``terminate`` and ``kill`` are a backend's
    own; ``capacity``, ``prepare``, ``close``, ``reap`` and ``start_replay`` have defaults
    that suit a backend with nothing to say there."""

    # Whether ``start_replay`` runs window replays. False (the default): the runner leaves
    # replays queued for a runner whose backend runs them (it never claims one here).
    runs_replays: ClassVar[bool] = False

    @abstractmethod
    def start(self, run_id: int, store: RunStore) -> int:
        """Start run ``run_id`` (claimed: ``starting`` in ``store``); returns its handle.
        Raises ``OSError`` (local) or any exception (a cluster gone) when it cannot."""

    @abstractmethod
    def alive(self, handle: int) -> bool:
        """Whether what ``handle`` stands for still runs (the runner ends the run otherwise)."""

    @abstractmethod
    def terminate(self, handle: int) -> None:
        """Ask it to stop, the first escalation of a cancel (SIGTERM, ``ray.cancel``)."""

    @abstractmethod
    def kill(self, handle: int) -> None:
        """Stop it for sure: a cancel it ignored, or a hung run (SIGKILL, forced cancel)."""

    def capacity(self) -> int | None:
        """How many runs it has room for at once; None (the default): no limit of its own,
        the runner's ``max_concurrent`` decides. A cluster asks its nodes; may raise when it
        cannot be reached (the runner keeps its runs queued and says why)."""
        return None

    def prepare(self, store: RunStore) -> None:
        """Get ready for the next run; called while nothing is active (``local`` starts a
        standby worker). The default does nothing."""
        return None

    def close(self) -> None:
        """Release what ``prepare`` made; called when the runner stops (runs already started
        go on). The default does nothing."""
        return None

    def reap(self) -> None:
        """Wait for the processes it started that have exited, so none is left a zombie;
        the runner calls it at every pass and when it stops (``local`` reaps its children).
        The default does nothing."""
        return None

    def start_replay(self, run_id: int, store: RunStore) -> int:
        """Start run ``run_id``'s window replay (``python -m bn_core.runs.replays.job
        RUN_ID``), judged by ``alive``/``kill`` like a run until it takes its job; returns its
        handle. Called only when ``runs_replays`` is True; the default raises."""
        raise NotImplementedError(f"{type(self).__name__} runs no window replays")
