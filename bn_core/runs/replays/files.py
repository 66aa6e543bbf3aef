"""Window replay files, TF-free: which runs can be replayed, the file format (path, atomic
write, validated read), the progress file and the log of a replay process.

``bn_core.runs.replays.job`` (TensorFlow, in its own process, a job of the job runner:
``JobRunner.replay``, ``bn_core.runs.store.replay_queue``) computes the numbers with
``bn_core.nn.replay`` and writes them here; the Streamlit process only reads them, so this
module never imports TensorFlow or Keras. Files are JSON, read with ``json.loads`` and
checked field by field (never unpickled).

A replay file, ``$BN_LAB_HOME/replays/run-ID.json``::

    {"run_id": 7, "variant": "lenet_fc_bn2", "dataset": "fashion_mnist",
     "trained_window": 5, "trained_test_accuracy": 0.88, "recorded_batches": 796,
     "epoch_batches": 796, "ema_momentum": 0.99, "ema_start_weight": 0.0003,
     "windows": [{"choice": "1", "kind": "window", "requested": 1, "window": 1,
                  "clipped": false, "test_accuracy": 0.85, "test_loss": 0.41}, ...],
     "created": 1767225600.0, "seconds": 4.2}

``kind`` is ``window`` (the last W recorded batches), ``epoch`` (every recorded batch: one
epoch) or ``ema`` (Keras' moving average over them); ``window`` is the number of batches
actually used, and ``clipped`` says a requested W was larger than the history.

While a replay runs, its job keeps ``$BN_LAB_HOME/logs/replay-ID.progress.json`` beside its
log (``{"stage": "replaying choice 3 of 8", "done": 2, "total": 8}``, rewritten atomically
at each stage, removed at the end) for the page's progress bar (``read_progress``).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from bn_core.runs.store import artifacts
from bn_core.runs.store.run_store import RunRecord
from bn_core.variants import VARIANTS
from bn_core.vocabulary import REPLAYABLE

KINDS = ("window", "epoch", "ema")
ROW_KEYS = ("choice", "kind", "requested", "window", "clipped", "test_accuracy", "test_loss")


class ReplayFileError(ValueError):
    """A replay file that cannot be used; ``str(e)`` is one line naming the file and the fix."""


# ----------------------------------------------------------------------------- which runs


def replay_problem(run: RunRecord, has_model: bool) -> str | None:
    """Why run ``run`` cannot be replayed (one line), or None when it can."""
    impl = VARIANTS[run.variant].bn_impl if run.variant in VARIANTS else None
    if impl == "none":
        return f"run #{run.id} is plain LeNet ({run.variant}): it has no BN, nothing to replay"
    if impl == "keras":
        return (
            f"run #{run.id} uses Keras' BatchNormalization ({run.variant}), which keeps only its "
            "moving averages, no batch history: replay applies to our BN only"
        )
    if impl is None:
        return f"run #{run.id} has an unknown variant {run.variant!r}"
    if run.status not in REPLAYABLE:  # the worker saves these runs' models
        only = " or ".join(REPLAYABLE)
        return f"run #{run.id} is {run.status}: only {only} runs have a model"
    if not has_model:
        return (
            f"run #{run.id} has no saved model (runs finished before models were saved, or "
            "whose model file was removed): train it again to replay it"
        )
    return None


# ----------------------------------------------------------------------------- the file


def replay_path(home: str | os.PathLike, run_id: int) -> Path:
    """Where run ``run_id``'s replay is written (derived from the id, never from input)."""
    return Path(home) / "replays" / f"run-{int(run_id)}.json"


def replay_log_path(home: str | os.PathLike, run_id: int) -> Path:
    return Path(home) / "logs" / f"replay-{int(run_id)}.log"


def replay_progress_path(home: str | os.PathLike, run_id: int) -> Path:
    return Path(home) / "logs" / f"replay-{int(run_id)}.progress.json"


def write_progress(path: Path, stage: str, done: int = 0, total: int = 0) -> None:
    """Say what a replay is doing: ``stage`` in words, ``done`` of ``total`` choices."""
    progress = {"stage": stage, "done": int(done), "total": int(total), "t": time.time()}
    artifacts.write_text(path, json.dumps(progress))


def read_progress(path: Path) -> tuple[float, str] | None:
    """(fraction done, stage) of a running replay, or None when it wrote none (yet) or the
    file is not one: a progress bar must never fail the page."""
    try:
        progress = json.loads(path.read_text(encoding="utf-8"))
        stage, done, total = progress["stage"], progress["done"], progress["total"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not (isinstance(stage, str) and _is_int(done) and _is_int(total)):
        return None
    return (min(max(done / total, 0.0), 1.0) if total > 0 else 0.0), stage


def write_replay(path: Path, payload: dict[str, Any]) -> None:
    """Validate ``payload`` and write it atomically: a reader (the page polls for this file)
    never finds half of it. Non-finite numbers are refused (strict JSON)."""
    _check_payload(payload, int(payload.get("run_id", -1)))
    artifacts.write_text(path, json.dumps(payload, indent=1, allow_nan=False))


def load_replay(path: Path, run_id: int) -> dict[str, Any] | None:
    """The replay of run ``run_id`` at ``path``; None if there is none yet.

    Raises ReplayFileError when the file is unreadable, not JSON or not a replay of that run.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayFileError(
            f"{path.name}: cannot be read ({exc}); replay the run again"
        ) from None
    try:
        payload = json.loads(text, parse_constant=_refuse_constant)
        _check_payload(payload, run_id)
    except (ValueError, TypeError) as exc:
        raise ReplayFileError(
            f"{path.name}: not a valid replay file ({exc}); replay the run again to rewrite it"
        ) from None
    return payload


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not allowed")


def _check_payload(payload: Any, run_id: int) -> None:
    """Raise ValueError naming the first field that is missing or of the wrong type."""
    if not isinstance(payload, dict):
        raise ValueError(f"expected an object, got {type(payload).__name__}")
    if payload.get("run_id") != run_id or not _is_int(payload.get("run_id")):
        raise ValueError(f"run_id should be {run_id}, got {payload.get('run_id')!r}")
    if not _is_int(payload.get("trained_window")) or payload["trained_window"] < 1:
        raise ValueError(
            f"trained_window must be an integer >= 1: {payload.get('trained_window')!r}"
        )
    for key, check in (
        ("recorded_batches", lambda v: _is_int(v) and v >= 1),
        ("ema_momentum", lambda v: _is_number(v) and 0 <= v < 1),
        ("ema_start_weight", lambda v: _is_number(v) and 0 <= v <= 1),
        ("trained_test_accuracy", _is_fraction_or_none),
    ):
        if key not in payload or not check(payload[key]):
            raise ValueError(f"{key} is missing or out of range: {payload.get(key)!r}")
    rows = payload.get("windows")
    if not isinstance(rows, list) or not rows:
        raise ValueError("windows must be a non-empty list")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or set(ROW_KEYS) - set(row):
            raise ValueError(f"windows[{i}] must have the keys {', '.join(ROW_KEYS)}")
        ok = (
            isinstance(row["choice"], str)
            and row["kind"] in KINDS
            and (row["requested"] is None or _is_int(row["requested"]))
            and _is_int(row["window"])
            and row["window"] >= 1
            and isinstance(row["clipped"], bool)
            and _is_fraction_or_none(row["test_accuracy"])
            and (row["test_loss"] is None or _is_number(row["test_loss"]))
        )
        if not ok:
            raise ValueError(f"windows[{i}] has a value of the wrong type or range: {row!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_fraction_or_none(value: Any) -> bool:
    return value is None or (_is_number(value) and 0.0 <= value <= 1.0)


# ----------------------------------------------------------------------------- the log


def last_log_line(path: Path) -> str | None:
    """The last non-empty line of a replay log (``logs/replay-ID.log``: a failed replay's
    one-line error), or None when there is none to read."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return None
    return lines[-1].strip() if lines else None
