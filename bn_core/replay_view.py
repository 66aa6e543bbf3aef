"""Window replay results, TF-free: the file format (path, atomic write, validated read), which
runs can be replayed, the replay subprocess, and the figure and tables of the Window page.

``bn_core.replay`` (TensorFlow) computes the numbers and writes them here; the Streamlit
process only reads them, so this module must never import TensorFlow or Keras. Files are
JSON, read with ``json.loads`` and checked field by field (never unpickled).

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
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from bn_core.store import RunRecord
from bn_core.variants import VARIANTS

EPOCH = "epoch"  # the window of every recorded batch: exact Algorithm 2 over one epoch
EMA = "EMA"  # Keras' exponential moving average, run over the recorded batches
DEFAULT_WINDOWS: tuple[int | str, ...] = (1, 2, 5, 10, 50, 200, EPOCH)
EMA_MOMENTUM = 0.99  # Keras' BatchNormalization default
KINDS = ("window", "epoch", "ema")
REPLAYABLE_STATUSES = ("completed", "cancelled")  # the worker saves these runs' models
_REPO_ROOT = Path(__file__).resolve().parent.parent
_ROW_KEYS = ("choice", "kind", "requested", "window", "clipped", "test_accuracy", "test_loss")


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
    if run.status not in REPLAYABLE_STATUSES:
        return f"run #{run.id} is {run.status}: only completed or cancelled runs have a model"
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


def write_replay(path: Path, payload: dict[str, Any]) -> None:
    """Validate ``payload`` and write it through a temporary file: a reader (the page polls
    for this file) never finds half of it. Non-finite numbers are refused (strict JSON)."""
    _check_payload(payload, int(payload.get("run_id", -1)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=1, allow_nan=False), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
        if not isinstance(row, dict) or set(_ROW_KEYS) - set(row):
            raise ValueError(f"windows[{i}] must have the keys {', '.join(_ROW_KEYS)}")
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


# ----------------------------------------------------------------------------- the subprocess


def start_replay(run_id: int, home: str | os.PathLike) -> subprocess.Popen:
    """Start ``python -m bn_core.replay RUN_ID`` in its own session (TensorFlow loads there,
    never in the caller), with its output in ``logs/replay-ID.log``, like a training worker."""
    home = Path(home).resolve()
    log_path = replay_log_path(home, run_id)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "BN_LAB_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(_REPO_ROOT), os.environ.get("PYTHONPATH")])
        ),
    }
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "bn_core.replay", str(int(run_id))],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a page reload or Ctrl-C of the server does not reach it
        )


def last_log_line(path: Path) -> str:
    """The last non-empty line of a replay log (its one-line error), or a fallback."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        lines = []
    return lines[-1] if lines else "the replay process ended without writing a result"


# ----------------------------------------------------------------------------- frames and figure


def choice_order(choices: Iterable[str]) -> list[str]:
    """Categories in axis order: numeric windows ascending, then ``epoch``, then ``EMA``."""
    unique = set(choices)
    numeric = sorted((c for c in unique if c.isdecimal()), key=int)
    return numeric + [c for c in (EPOCH, EMA) if c in unique]


def replay_frame(payloads: Sequence[dict[str, Any]], labels: dict[int, str]) -> pd.DataFrame:
    """One row per (run, choice): run_id, run (label), choice, kind, requested, window,
    clipped, trained (this is the run's own window_size), test_accuracy, test_loss."""
    rows = []
    for payload in payloads:
        run_id = payload["run_id"]
        for row in payload["windows"]:
            trained = row["kind"] == "window" and row["requested"] == payload["trained_window"]
            rows.append(
                {
                    "run_id": run_id,
                    "run": labels.get(run_id, f"#{run_id}"),
                    **{k: row[k] for k in _ROW_KEYS},
                    "trained": trained,
                }
            )
    columns = ["run_id", "run", *_ROW_KEYS, "trained"]
    # Int64 keeps W an integer next to the EMA's missing "requested" (not 200.0 beside NaN).
    return pd.DataFrame(rows, columns=columns).astype({"requested": "Int64", "window": "Int64"})


def describe_choice(row: dict[str, Any] | pd.Series) -> str:
    """How many batches a choice used: 'W = 5', 'W = 200 → 117 (clipped to the history)'."""
    if row["kind"] == "ema":
        return f"EMA over {row['window']} batches"
    if row["clipped"]:
        asked = row["requested"] if row["kind"] == "window" else f"one epoch ({row['requested']})"
        return f"W = {asked} → {row['window']} (clipped to the recorded batches)"
    return f"W = {row['window']}"


def replay_figure(frame: pd.DataFrame, height: int = 420) -> go.Figure:
    """Test accuracy against the choice (categorical, in ``choice_order``), one line per run;
    a clipped choice is an open marker, the run's own trained window a star."""
    fig = go.Figure()
    colors = qualitative.Plotly
    for i, (run, rows) in enumerate(frame.groupby("run", sort=False)):
        color = colors[i % len(colors)]
        hover = [describe_choice(r) for _, r in rows.iterrows()]
        fig.add_trace(
            go.Scatter(
                x=rows["choice"], y=rows["test_accuracy"], name=str(run), mode="lines+markers",
                legendgroup=str(run), line={"color": color}, customdata=hover,
                marker={"color": color, "size": 9,
                        "symbol": ["circle-open" if c else "circle" for c in rows["clipped"]]},
                hovertemplate="%{x}: %{y:.4f}<br>%{customdata}<extra>%{fullData.name}</extra>",
            )
        )  # fmt: skip
        own = rows[rows["trained"]]
        if not own.empty:
            fig.add_trace(
                go.Scatter(
                    x=own["choice"], y=own["test_accuracy"], mode="markers",
                    name=f"{run}: trained window", legendgroup=str(run), showlegend=True,
                    marker={"color": color, "size": 18, "symbol": "star",
                            "line": {"width": 1, "color": "black"}},
                    hovertemplate="trained window W = %{x}: %{y:.4f}<extra></extra>",
                )
            )  # fmt: skip
    fig.update_layout(
        title="Test accuracy by inference statistics",
        xaxis_title="statistics from the last W training batches (epoch: all; EMA: Keras')",
        yaxis_title="test accuracy",
        template="plotly_white",
        height=height,
        legend={"orientation": "h", "yanchor": "top", "y": -0.2},
    )
    fig.update_xaxes(type="category", categoryorder="array",
                     categoryarray=choice_order(frame["choice"]))  # fmt: skip
    return fig


def accuracy_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Choices as rows (axis order), runs as columns, test accuracy as text: '0.8812', with
    '★' on the run's trained window and '(W = 117)' where a window was clipped."""

    def cell(row: pd.Series) -> str:
        acc = row["test_accuracy"]
        text = "—" if acc is None or pd.isna(acc) else f"{acc:.4f}"
        if row["clipped"]:
            text += f" (W = {row['window']})"
        return text + (" ★" if row["trained"] else "")

    if frame.empty:
        return pd.DataFrame()
    table = frame.assign(cell=frame.apply(cell, axis=1)).pivot(
        index="choice", columns="run", values="cell"
    )
    order = choice_order(frame["choice"])
    runs = list(dict.fromkeys(frame["run"]))
    return table.reindex(index=order, columns=runs).fillna("").rename_axis(index="W", columns=None)
