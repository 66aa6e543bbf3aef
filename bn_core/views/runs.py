"""The Runs page's data shaping: run labels and captions, runs grouped by submission, live
progress (stage, epoch, batch, images/s, ETA), the "no learning" flag of a run that ended at
chance, and the live loss/accuracy figure of one run.

No Streamlit and no TensorFlow here: plain run records and metric rows in, values and plotly
figures out, unit-tested without a browser.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from bn_core.config import TrainConfig
from bn_core.results import CHANCE, chance_margin, final_accuracy, finite, no_learning
from bn_core.runs.store import RunRecord
from bn_core.views.charts import METRIC_TITLES
from bn_core.views.train_form import format_learning_rate
from bn_core.vocabulary import ERROR, RunStatus, Stage

# The ends a run's card shows as an error, its error line in red.
ERROR_STATUSES: tuple[RunStatus, ...] = ERROR
STATUS_COLORS: dict[RunStatus, str] = {
    RunStatus.QUEUED: "gray",
    RunStatus.STARTING: "blue",
    RunStatus.RUNNING: "blue",
    RunStatus.COMPLETED: "green",
    RunStatus.CANCELLED: "orange",
    RunStatus.DIVERGED: "red",
    RunStatus.FAILED: "red",
    RunStatus.INTERRUPTED: "violet",
}


def run_label(run: RunRecord, status: bool = True) -> str:
    """'#12 lenet_fc_bn2 seed 0 (completed)'; a named run: '#12 wide lr (lenet_fc_bn2 seed 0,
    completed)'. Without ``status``: '#12 lenet_fc_bn2 seed 0' (a chart's legend)."""
    what = f"{run.variant} seed {run.seed}"
    if run.name:
        return f"#{run.id} {run.name} ({what}, {run.status})" if status else f"#{run.id} {run.name}"
    return f"#{run.id} {what} ({run.status})" if status else f"#{run.id} {what}"


TABLE_COLUMNS: tuple[str, ...] = (
    "run",
    "status",
    "progress",
    "name",
    "group",
    "variant",
    "seed",
    "test accuracy",
    "tags",
    "node",
    "img/s",
    "created",
)


def table_frame(
    runs: Sequence[RunRecord], group_names: dict[str, str], steps_done: dict[int, int]
) -> pd.DataFrame:
    """The Runs table: one row per run in ``runs``' order, with ``TABLE_COLUMNS``. Progress
    is steps done (``steps_done``: the newest batch event's step) over the run's total, 1 once
    completed; a group is shown by its name (``group_names``), else its id. "img/s" is the
    training speed recorded at the run's end (None before, and for older runs)."""
    rows = []
    for run in runs:
        total = run.total_steps or 0
        progress = min(steps_done.get(run.id, 0) / total, 1.0) if total else 0.0
        label = "cancelling" if run.active and run.cancel_requested else run.status
        if no_learning(run.status, run.test_accuracy, [], run.config.val_size):
            label += " · no learning"  # ended at chance (its card says why)
        rows.append(
            {
                "run": run.id,
                "status": label,
                "progress": 1.0 if run.status == RunStatus.COMPLETED else progress,
                "name": run.name or "",
                "group": group_names.get(run.group_id, run.group_id),
                "variant": run.variant,
                "seed": run.seed,
                "test accuracy": finite(run.test_accuracy),
                "tags": ", ".join(run.tag_list),
                "node": run.node or "",
                "img/s": finite(run.images_per_second),
                "created": pd.Timestamp.fromtimestamp(run.created_at),  # server local time
            }
        )
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def where_caption(run: RunRecord) -> str | None:
    """Where a Ray run executes, for its card: 'ran on gpu-3 (Ray)' ('runs on' while active),
    'waiting for a Ray node' before one took it; None for a local run (its node is the
    table's)."""
    if run.backend_name != "ray":
        return None
    if run.node is None:
        return Stage.WAITING if run.active else "on Ray (no node took it)"
    return f"{'runs' if run.active else 'ran'} on {run.node} (Ray)"


def config_caption(config: TrainConfig) -> str:
    """The settings of a run on one line."""
    limit = f" · {config.train_limit:,} train images" if config.train_limit else ""
    return (
        f"{config.dataset} · {config.epochs} epoch{'s' * (config.epochs != 1)} · "
        f"batch {config.batch_size} · "
        f"{config.optimizer} lr {format_learning_rate(config.learning_rate, config.optimizer)} · "
        f"ε {config.epsilon:g} · window {config.window_size} · {config.activation}{limit}"
    )


def no_learning_note(run: RunRecord, epochs: Sequence[dict[str, Any]]) -> str | None:
    """One line saying that ``run`` ended at chance (``bn_core.results.no_learning``, from its
    test accuracy, else its last epoch row's validation accuracy), or None when it did not."""
    val = [e.get("val_accuracy") for e in epochs]
    if not no_learning(run.status, run.test_accuracy, val, run.config.val_size):
        return None
    accuracy, n = final_accuracy(run.test_accuracy, val, run.config.val_size)
    which = "test" if finite(run.test_accuracy) is not None else "validation"
    return (
        f"No learning: final {which} accuracy {accuracy:.4f} is within chance "
        f"({CHANCE:g} + {chance_margin(n):.3f} on {n:,} images); the run learned nothing "
        "(a lower learning rate usually helps)."
    )


def group_runs(runs: Iterable[RunRecord]) -> list[tuple[str, list[RunRecord]]]:
    """Runs grouped by group_id: newest group first, each group in queue (id) order."""
    groups: dict[str, list[RunRecord]] = {}
    for run in sorted(runs, key=lambda r: r.id):
        groups.setdefault(run.group_id, []).append(run)
    return sorted(groups.items(), key=lambda item: -max(r.id for r in item[1]))


def rows_by_run(rows: Iterable[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Metric rows of several runs (one store query) split per run, order kept."""
    out: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["run_id"], []).append(row)
    return out


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def progress_info(
    run: RunRecord, batches: Sequence[dict[str, Any]], epochs: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Progress of one run from its metric rows (store order: by step / by epoch).

    ``fraction`` = steps done / total steps (1.0 once completed). ``images_per_second`` is
    the last finished epoch's throughput, else (mid first epoch) the rate between the first
    and last batch events. ``eta_seconds`` (running runs with training steps left, not being
    cancelled) extrapolates the step rate between the first and last batch events,
    validation pauses included.

    ``text`` names what a run waits for when there is no ETA to give: ``queued``, the run's
    stage (``run.stage``: starting Python/TensorFlow, loading data, compiling) before its
    first batch event, and after its last step the stage it is in instead of "ETA 0 s"
    (validating, evaluating on the test set, saving the model).

    Steps are counted as (epoch - 1) * steps_per_epoch + batch with the batch capped at
    steps_per_epoch: the event that closes an epoch may report the end of a whole
    steps_per_execution chunk, past the epoch's real last step.
    """
    config = run.config
    per_epoch = run.steps_per_epoch
    total = run.total_steps or (per_epoch * config.epochs if per_epoch else None)
    epochs_done = epochs[-1]["epoch"] if epochs else 0

    def steps(row: dict[str, Any]) -> int:
        if not per_epoch:
            return row["step"]
        return (row["epoch"] - 1) * per_epoch + min(row["batch"], per_epoch)

    first, last = (batches[0], batches[-1]) if batches else (None, None)
    step = max(steps(last) if last else 0, epochs_done * (per_epoch or 0))
    fraction = min(step / total, 1.0) if total else 0.0
    if run.status == RunStatus.COMPLETED:
        fraction = 1.0

    images_per_second = epochs[-1].get("images_per_second") if epochs else None
    step_rate = None
    if first is not None and last["t"] > first["t"] and steps(last) > steps(first):
        step_rate = (steps(last) - steps(first)) / (last["t"] - first["t"])
        if images_per_second is None:
            images_per_second = step_rate * config.batch_size
    eta = None
    if run.status == RunStatus.RUNNING and total and step_rate and step < total:
        eta = None if run.cancel_requested else (total - step) / step_rate

    if run.status == RunStatus.QUEUED:
        text = str(RunStatus.QUEUED)
    elif run.status == RunStatus.STARTING or (run.status == RunStatus.RUNNING and not batches):
        text = run.stage or Stage.STARTING
    else:
        parts = []
        if run.active and last is not None:
            parts.append(f"epoch {min(last['epoch'], config.epochs)}/{config.epochs}")
            if per_epoch:  # the last event of an epoch can overshoot (steps_per_execution)
                parts.append(f"batch {min(last['batch'], per_epoch)}/{per_epoch}")
        else:
            parts.append(f"{run.status} after {epochs_done}/{config.epochs} epochs")
        if images_per_second:
            parts.append(f"{images_per_second:,.0f} img/s")
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
        elif run.active and run.cancel_requested:
            parts.append("cancelling")
        elif run.active and run.stage:
            parts.append(run.stage)
        text = " · ".join(parts)
    return {
        "fraction": fraction,
        "text": text,
        "eta_seconds": eta,
        "images_per_second": images_per_second,
    }


def live_figure(
    batches: Sequence[dict[str, Any]] | pd.DataFrame,
    epochs: Sequence[dict[str, Any]] | pd.DataFrame,
    metric: str,
    *,
    uirevision: Any = None,
    height: int = 280,
) -> go.Figure:
    """``metric`` ("loss" or "accuracy") of one run against epochs: batch-level training
    values as a line at x = epoch_progress, epoch means (training, validation) as markers."""
    b = batches if isinstance(batches, pd.DataFrame) else pd.DataFrame(list(batches))
    e = epochs if isinstance(epochs, pd.DataFrame) else pd.DataFrame(list(epochs))
    fig = go.Figure()
    if not b.empty:
        # An epoch's closing event can overshoot (a whole steps_per_execution chunk): its x
        # is capped at the end of its epoch.
        b = b.assign(epoch_progress=b["epoch_progress"].clip(upper=b["epoch"]))
        fig.add_trace(
            go.Scatter(
                x=b["epoch_progress"],
                y=b[metric],
                name="train (batches)",
                mode="lines" if len(b) > 20 else "lines+markers",
                line={"width": 1.5, "color": "#9aa5c4"},
                marker={"size": 4},
            )
        )
    if not e.empty:
        fig.add_trace(
            go.Scatter(
                x=e["epoch"],
                y=e[metric],
                mode="markers",
                name="train (epoch)",
                marker={"size": 8, "color": "#636EFA"},
            )
        )
        val = e[f"val_{metric}"]
        if val.notna().any():
            fig.add_trace(
                go.Scatter(
                    x=e["epoch"],
                    y=val,
                    mode="markers",
                    name="validation",
                    marker={"size": 9, "symbol": "diamond", "color": "#EF553B"},
                )
            )
    fig.update_layout(
        title=METRIC_TITLES.get(metric, metric).replace("Training ", "").capitalize(),
        xaxis_title="epoch",
        yaxis_title=metric,
        template="plotly_white",
        height=height,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
        uirevision=uirevision,
    )
    fig.update_xaxes(rangemode="tozero")
    return fig
