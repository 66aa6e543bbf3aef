"""What the run store holds, as Python values: metric fields, backends, ``RunRecord``.

Run statuses and their groups are ``bn_core.vocabulary``'s (``RunStatus``, ``ACTIVE``, ...):
``queued`` -> ``starting`` -> ``running`` -> one of ``completed``, ``cancelled``,
``diverged``, ``failed`` (a run's own end) or ``interrupted`` (its process vanished: killed,
crashed, or the machine restarted).

A running run's ``stage`` says what it is doing, in words a progress line shows as they are
(``bn_core.vocabulary.Stage``): ``Stage.STARTING`` (written by the worker as it claims the
run), then the engine's stages (``ENGINE_STAGES``: loading data, compiling, training, ...),
then the worker's ``Stage.SAVING``. None for runs that never ran, and in stores older than
the column.

A row that cannot be read as a run (its ``config_json`` not JSON, not an object, or holding a
value of the wrong type; a column of the wrong type, or a status that is no ``RunStatus``: a
file edited by hand, a disk that flipped bits) raises ``DamagedRun`` (a ``ValueError``) in
``RunRecord.from_row``. The store skips such rows and lists them (``RunStore.damaged_runs``);
``damage_note`` is the line every page and the CLI show for one. Limits are not checked here: a
config stored under older limits is still a run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
import typing
from dataclasses import dataclass
from pathlib import Path

from bn_core import settings
from bn_core.config import TrainConfig, field_spec
from bn_core.results import HISTORY_KEYS
from bn_core.vocabulary import ACTIVE, RunStatus

BACKENDS = ("local", "ray")  # where runs execute (bn_core.runs.execution.backends)
BATCH_FIELDS = ("step", "epoch", "batch", "epoch_progress", "loss", "accuracy", "t")
EPOCH_FIELDS = ("epoch", "step", *HISTORY_KEYS, "t")  # one row per epoch of a run's history


def default_home() -> Path:
    """The run store's folder: ``$BN_LAB_HOME``, else ``./.bn_lab`` (``bn_core.settings``)."""
    return settings.value("BN_LAB_HOME")


@dataclass(frozen=True)
class RunRecord:
    """One row of ``runs``, with its config parsed."""

    id: int
    group_id: str
    variant: str
    seed: int
    config: TrainConfig
    status: RunStatus
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat: float | None
    pid: int | None  # the column of ``handle``: read it as ``run.handle``
    cancel_requested: bool
    error: str | None
    data_source: str | None
    steps_per_epoch: int | None
    total_steps: int | None
    test_loss: float | None
    test_accuracy: float | None
    stage: str | None = None
    owner: str | None = None  # bn_core.runs.store.owner: who has it while starting/running
    resumes: int = 0  # times it continued from a checkpoint
    name: str | None = None  # given by its user (bn_core.runs.store.catalog); None: unnamed
    tags: str | None = None  # its tags joined by commas, or None
    node: str | None = None  # the host that ran it (None while queued, and for older runs)
    backend: str | None = None  # where it executes: None for local processes, "ray"
    images_per_second: float | None = None  # training speed, recorded at its end

    def __post_init__(self):
        # A member, or ValueError (RunStatus.parse): a record never holds a made-up status.
        object.__setattr__(self, "status", RunStatus.parse(self.status))

    @property
    def backend_name(self) -> str:
        """``local`` or ``ray``."""
        return self.backend or "local"

    @property
    def handle(self) -> int | None:
        """What its backend's ``start`` returned, to find the run again (``Backend``): a
        local worker's process id, a Ray run's number of that backend's own. Stored in the
        ``pid`` column, named when handles were all process ids, and kept: renaming a column
        every store has means a migration that older BN Labs sharing the store would refuse,
        and the worker still writes its own process id there when it claims a run."""
        return self.pid

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def tag_list(self) -> tuple[str, ...]:
        """Its tags, in the order they were given."""
        return tuple(self.tags.split(",")) if self.tags else ()

    @property
    def display_name(self) -> str:
        """What a picker shows for it: its name, else its variant and seed."""
        return self.name or f"{self.variant} seed {self.seed}"

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        """The run in ``row``; ``DamagedRun`` (with the reason) when it cannot be one."""
        names = {f.name for f in dataclasses.fields(cls)}
        # Columns this version does not know (a store shared with a newer tool) are ignored.
        values = {k: v for k, v in dict(row).items() if k in names or k == "config_json"}
        run_id = values.get("id")
        problem = _columns_problem(values)
        if problem is not None:
            raise DamagedRun(run_id, problem)
        # Not re-validated: a config stored under older limits must not make listing (and so
        # scheduling) fail; the worker validates it and fails that one run with a clear message.
        values["config"] = _config(run_id, values.pop("config_json"))
        try:
            values["status"] = RunStatus.parse(values["status"])
        except ValueError:
            problem = f"its status is {_short(values['status'])}, not a run status"
            raise DamagedRun(run_id, problem) from None
        values["cancel_requested"] = bool(values["cancel_requested"])
        return cls(**values)


class DamagedRun(ValueError):
    """A row of ``runs`` that cannot be read as a run. ``str(e)`` is the reason, one line."""

    def __init__(self, run_id: int | None, reason: str):
        super().__init__(reason)
        self.run_id = run_id
        self.reason = reason


def read_rows(rows) -> tuple[list[RunRecord], dict[int, str]]:
    """The runs of ``rows`` that can be read, and {id: reason} for those that cannot."""
    runs, damaged = [], {}
    for row in rows:
        try:
            runs.append(RunRecord.from_row(row))
        except DamagedRun as exc:
            damaged[exc.run_id] = exc.reason
    return runs, damaged


def damage_note(run_id: int, reason: str) -> str:
    """The one line the pages and ``bn-lab runs`` show for a damaged run."""
    return f"run #{run_id} is damaged ({reason}) and is skipped"


# The Python type each column of a run must hold (SQLite keeps whatever a file was given), and
# the columns that may be NULL.
_HINTS = {n: h for n, h in typing.get_type_hints(RunRecord).items() if n != "config"}
_COLUMN_TYPES = {
    n: [t for t in typing.get_args(h) or (h,) if t is not type(None)][0] for n, h in _HINTS.items()
}
_NULLABLE = {n for n, h in _HINTS.items() if type(None) in typing.get_args(h)}
# What JSON calls the values json.loads returns.
_JSON_KINDS = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}


def _columns_problem(values: dict) -> str | None:
    """What is wrong with the columns of a row (``values``), or None: each holds its field's
    type, or NULL where the field allows it."""
    for name, kind in _COLUMN_TYPES.items():
        if name not in values:  # a column older stores lack: the field's default
            continue
        value = values[name]
        if value is None:
            if name not in _NULLABLE:
                return f"its {name} is empty"
            continue
        # SQLite has no booleans (0 or 1) and may keep a whole REAL as an INTEGER.
        accepted = {bool: int, float: (int, float), RunStatus: str}.get(kind, kind)
        if not isinstance(value, accepted) or isinstance(value, bool):
            return f"its {name} is {_short(value)}, not {_type_name(kind)}"
    if not isinstance(values.get("config_json"), str):
        return f"its config_json is {_short(values.get('config_json'))}, not JSON text"
    return None


# Each config field's type and choices, read once: a page of runs reads hundreds of values.
_SPECS = {f.name: field_spec(f.name) for f in dataclasses.fields(TrainConfig)}


def _config(run_id: int | None, text: str) -> TrainConfig:
    """The stored config, if every value it holds has its field's type and choices."""
    try:
        stored = json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError, and unpaired surrogates
        raise DamagedRun(run_id, f"its config_json is not JSON: {exc}") from None
    if not isinstance(stored, dict):
        kind = _JSON_KINDS.get(type(stored), "null")
        raise DamagedRun(run_id, f"its config_json is {kind}, not a JSON object")
    known = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name not in stored:  # older configs lack newer fields: their defaults
            continue
        value = stored[f.name]
        expected = _config_value_problem(f.name, value, nullable=f.default is None)
        if expected is not None:
            raise DamagedRun(run_id, f"its config's {f.name} is {_short(value)}, not {expected}")
        known[f.name] = value
    return TrainConfig(**known)


def _config_value_problem(name: str, value, *, nullable: bool) -> str | None:
    """What ``value`` of config field ``name`` should have been, or None when it is one."""
    if value is None and nullable:
        return None
    spec = _SPECS[name]
    if spec["choices"] is not None:
        ok = isinstance(value, str) and value in spec["choices"]
        return None if ok else "one of " + ", ".join(spec["choices"])
    if spec["type"] is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "an integer"
    if spec["type"] is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok and math.isfinite(value) else "a finite number"
    return None if isinstance(value, str) else "text"


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_name(kind: type) -> str:
    names = {int: "an integer", bool: "0 or 1", float: "a number", str: "text", RunStatus: "text"}
    return names[kind]
