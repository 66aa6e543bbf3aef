"""A run's vocabulary, spelled once: its statuses with their groups, the stages a running run
shows, and the kinds of event a training emits. TF-free; imports nothing from bn_core.

Statuses::

    queued -> starting -> running -> completed | cancelled | diverged | failed   (its own end)
                                  -> interrupted       (its process or node vanished)

Every member is a ``str`` (``StrEnum``), so a status read from SQLite or JSON compares equal
to its member and is stored as its plain value; ``RunStatus.parse`` turns a string from
outside into a member or raises ``ValueError`` (never an ``assert``, which ``python -O``
removes).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run is in its life (see the module docstring for the order)."""

    QUEUED = "queued"
    STARTING = "starting"  # claimed by a runner, its process not yet running it
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    DIVERGED = "diverged"  # its loss became non-finite or exploded (bn_core.nn.training)
    FAILED = "failed"  # an error of its own: config, data, TensorFlow, a full disk
    INTERRUPTED = "interrupted"  # its process or node vanished; metrics up to then are kept

    @classmethod
    def parse(cls, value: object) -> RunStatus:
        """``value`` as a member; ``ValueError`` naming it and the statuses there are."""
        return _parse(cls, value, "a run status")


def parse_statuses(values: Iterable[object]) -> tuple[RunStatus, ...]:
    """Each of ``values`` as a member (``RunStatus.parse``: ``ValueError`` for one that is
    not); a lone string is refused too, as it would be read letter by letter."""
    if isinstance(values, str):
        raise ValueError(f"expected a collection of run statuses. Received: {values!r}")
    return tuple(RunStatus.parse(value) for value in values)


# -- groups -----------------------------------------------------------------------------------

ACTIVE = (RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING)
FINISHED = (
    RunStatus.COMPLETED,
    RunStatus.CANCELLED,
    RunStatus.DIVERGED,
    RunStatus.FAILED,
    RunStatus.INTERRUPTED,
)
STATUSES = ACTIVE + FINISHED
# Active runs a runner has claimed: their process is starting or running them (what a
# concurrency limit counts, what a heartbeat keeps alive, what a reaper checks).
STARTED = (RunStatus.STARTING, RunStatus.RUNNING)
# Active runs whose training has not begun: nothing recorded yet, no curve to draw.
PRE_RUN = (RunStatus.QUEUED, RunStatus.STARTING)
# What the training engine itself can end a run as (TrainResult.status); ``interrupted`` is
# only ever judged from outside, by a runner that finds the run's process gone.
ENGINE_ENDS = (RunStatus.COMPLETED, RunStatus.CANCELLED, RunStatus.DIVERGED, RunStatus.FAILED)
# Ended runs that can go on from their last checkpoint (Resume).
RESUMABLE = (RunStatus.INTERRUPTED, RunStatus.CANCELLED, RunStatus.FAILED)
# Ended runs whose model is saved (so window replay can load it): trained to an end it chose.
REPLAYABLE = (RunStatus.COMPLETED, RunStatus.CANCELLED)
# Ended runs with nothing left to resume: their checkpoint is removed.
SETTLED = (RunStatus.COMPLETED, RunStatus.DIVERGED)
# Ended runs that say something went wrong (a card shows their error line in red): a
# diverged run's line says where its loss blew up.
ERROR = (RunStatus.DIVERGED, RunStatus.FAILED, RunStatus.INTERRUPTED)
# Ended runs with trained epochs and no error status of their own, whose accuracy the
# no-learning rule judges (``diverged`` and ``failed`` already say what went wrong).
LEARNING = (RunStatus.COMPLETED, RunStatus.CANCELLED, RunStatus.INTERRUPTED)


class Stage(StrEnum):
    """What a running run is doing (``runs.stage``), in the words a progress line shows."""

    STARTING = "starting Python/TensorFlow"  # a worker's first stage: process, imports, store
    WAITING = "waiting for a Ray node"  # a Ray run until its task starts on a node
    LOADING = "loading data"
    COMPILING = "compiling"  # until the first step's event: tracing and XLA
    TRAINING = "training"
    VALIDATING = "validating"
    EVALUATING = "evaluating on the test set"
    SAVING = "saving the model"  # after training, before the run's end is written


# The engine's own stages, in order (bn_core.nn.training emits a ``stage`` event for each).
ENGINE_STAGES = (Stage.LOADING, Stage.COMPILING, Stage.TRAINING, Stage.VALIDATING, Stage.EVALUATING)


class Event(StrEnum):
    """The ``type`` of an event: the engine's (every backend records them the same way) and
    the ones a Ray task adds to carry what a local worker finds on its own disk."""

    STAGE = "stage"
    START = "start"
    RESUME = "resume"
    BATCH = "batch"
    EPOCH = "epoch"
    PROBE = "probe"
    MODE_GAP = "mode_gap"
    END = "end"
    # from a Ray task only (bn_core.runs.execution.backends.ray_task)
    NODE = "node"
    RESTART = "restart"
    CHECKPOINT = "checkpoint"
    MODEL = "model"
    DONE = "done"


METRIC_EVENTS = (Event.BATCH, Event.EPOCH, Event.PROBE, Event.MODE_GAP)  # rows in the store
# What the training engine emits (bn_core.nn.training): ``probe`` and ``mode_gap`` only with
# probes on (bn_core.nn.probes), ``resume`` only when a run continues from a checkpoint.
ENGINE_EVENTS = (
    Event.STAGE,
    Event.START,
    Event.RESUME,
    Event.BATCH,
    Event.EPOCH,
    Event.PROBE,
    Event.MODE_GAP,
    Event.END,
)


class ReplayStatus(StrEnum):
    """Where a window-replay job is (``replay_jobs.status``, bn_core.runs.store.replay_queue)::

    queued -> running -> done | failed        (queued again: back to queued)
    """

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @classmethod
    def parse(cls, value: object) -> ReplayStatus:
        """``value`` as a member; ``ValueError`` naming it and the statuses there are."""
        return _parse(cls, value, "a replay status")


REPLAY_ENDS = (ReplayStatus.DONE, ReplayStatus.FAILED)  # a replay job's own ends


def _parse(kind: type[StrEnum], value: object, what: str):
    """``kind(value)``, or a ``ValueError`` naming ``value`` and every allowed one."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ValueError(f"{value!r} is not {what} (one of {allowed})") from None
