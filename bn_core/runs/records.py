"""What the run store holds, as Python values: run statuses, metric fields, ``RunRecord``.

Run statuses: ``queued`` -> ``starting`` -> ``running`` -> one of ``completed``,
``cancelled``, ``diverged``, ``failed`` (a run's own end) or ``interrupted`` (its process
vanished: killed, crashed, or the machine restarted).

A running run's ``stage`` says what it is doing, in words a progress line shows as they are:
``STARTING`` (written by the worker as it claims the run), then the engine's stages
(``bn_core.nn.training.STAGES``: loading data, compiling, training, ...), then the worker's
``saving the model``. None for runs that never ran, and in stores older than the column.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bn_core.config import TrainConfig
from bn_core.results import HISTORY_KEYS

ACTIVE = ("queued", "starting", "running")
FINISHED = ("completed", "cancelled", "diverged", "failed", "interrupted")
STATUSES = ACTIVE + FINISHED
BATCH_FIELDS = ("step", "epoch", "batch", "epoch_progress", "loss", "accuracy", "t")
EPOCH_FIELDS = ("epoch", "step", *HISTORY_KEYS, "t")  # one row per epoch of a run's history
STARTING = "starting Python/TensorFlow"  # a worker's first stage: a process, imports, the store


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
    stage: str | None = None

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
