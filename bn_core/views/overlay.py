"""Several runs in one chart, as TensorBoard and W&B draw them: a line per run against
training steps, epochs or wall-clock time, smoothed, with the raw points faint behind it.

Training loss and accuracy come from the store's batch rows (``chunk_means`` turns Keras'
running epoch means back into the mean of each reported chunk of steps); validation metrics
from the epoch rows. Colour says the variant (``views.comparison.variant_color``), the dash
says the seed, so a group of variants x seeds reads at a glance.

Pure: run records and metric rows in, a plotly Figure out (no Streamlit, no TensorFlow).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from bn_core.runs.store import RunRecord
from bn_core.views.charts import METRIC_TITLES
from bn_core.views.comparison import variant_color

X_AXES: dict[str, str] = {"step": "training step", "epoch": "epoch", "time": "wall-clock time"}
OVERLAY_METRICS: dict[str, str] = {
    m: METRIC_TITLES[m] for m in ("loss", "accuracy", "val_loss", "val_accuracy")
}
TRAINING_METRICS = ("loss", "accuracy")  # from batch rows; the others from epoch rows
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")  # one per seed
RAW_OPACITY = 0.25  # the unsmoothed points behind a smoothed line
MINUTES_AFTER = 300.0  # seconds: a longer time axis counts minutes
CHUNK_COLUMNS = ["step", "epoch", "epoch_progress", "t", "loss", "accuracy"]
# Per x axis: the column of a chunk_means frame and of an epoch row that gives x.
_X_COLUMNS = {"step": ("step", "step"), "epoch": ("epoch_progress", "epoch"), "time": ("t", "t")}


def ema(values, weight: float) -> np.ndarray:
    """TensorBoard's smoothing of ``values`` with ``weight`` w in [0, 1) (0 = raw values).

    A debiased exponential moving average over the finite values y_1, y_2, ...:
    s_k = w s_{k-1} + (1 - w) y_k with s_0 = 0, reported as s_k / (1 - w^k), so the first
    point is y_1 itself rather than a value pulled towards zero. A NaN or infinite value stays
    NaN in the output and is skipped (k does not advance), so it does not poison what follows.
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1). Received: {weight}")
    y = np.asarray(values, dtype=float)
    out = np.full_like(y, np.nan)
    last, count = 0.0, 0
    for i, value in enumerate(y.tolist()):  # sequential by nature; a few hundred points
        if math.isfinite(value):
            last, count = last * weight + (1.0 - weight) * value, count + 1
            out[i] = last / (1.0 - weight**count)
    return out


def chunk_means(
    batches: Sequence[dict[str, Any]], steps_per_epoch: int | None = None
) -> pd.DataFrame:
    """The mean loss and accuracy of each chunk of steps between two batch rows of one run.

    A batch row holds Keras' running mean m_k over the first b_k steps of its epoch (reset
    each epoch), reported every steps_per_execution steps. The chunk that ends at row k has
    mean (b_k m_k - b_j m_j) / (b_k - b_j), row j being the previous row of the same epoch,
    and m_k for an epoch's first row. With ``steps_per_epoch`` each b is capped at it (an
    epoch's closing event may report the end of a whole chunk past the epoch's last step,
    as ``views.runs.progress_info`` explains), and step and epoch_progress are recounted from
    the capped batch. A missing (non-finite) mean leaves its chunk and the next one NaN.

    Columns: step, epoch, epoch_progress, t, loss, accuracy; one row per batch row, in order.
    """
    return pd.DataFrame(_chunks(batches, steps_per_epoch), columns=CHUNK_COLUMNS)


def _chunks(batches: Sequence[dict[str, Any]], steps_per_epoch: int | None) -> dict:
    """``chunk_means`` as a dict of arrays (plain numpy: a frame per run would cost more
    than the maths)."""
    epoch = _column(batches, "epoch").astype(np.int64)
    batch, step, progress = (_column(batches, k) for k in ("batch", "step", "epoch_progress"))
    if steps_per_epoch:
        batch = np.minimum(batch, steps_per_epoch)
        step = (epoch - 1) * steps_per_epoch + batch
        progress = (epoch - 1) + batch / steps_per_epoch
    # The previous row of the same epoch (rows come in step order); none: an epoch's first.
    same = np.r_[False, epoch[1:] == epoch[:-1]]  # (n,)
    width = batch - np.where(same, np.r_[0.0, batch[:-1]], 0.0)
    out = {"step": step, "epoch": epoch, "epoch_progress": progress, "t": _column(batches, "t")}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name in TRAINING_METRICS:
            total = batch * _column(batches, name)  # b_k m_k: the sum over the epoch so far
            total_before = np.where(same, np.r_[0.0, total[:-1]], 0.0)
            out[name] = np.where(width > 0, (total - total_before) / width, np.nan)
    return out


def _column(rows: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    """``key`` of every row as floats, None (a non-finite value in the store) as NaN."""
    return np.array([row[key] for row in rows], dtype=float)


def overlay_figure(
    runs: Sequence[RunRecord],
    batches: Mapping[int, Sequence[dict[str, Any]]],
    epochs: Mapping[int, Sequence[dict[str, Any]]],
    metric: str,
    *,
    x: str = "step",
    smoothing: float = 0.6,
    log_y: bool = False,
    y_range: tuple[float, float] | None = None,
    labels: Mapping[int, str] | None = None,
    height: int = 360,
    uirevision: Any = None,
) -> go.Figure:
    """``metric`` (a key of ``OVERLAY_METRICS``) of every run in ``runs`` in one chart.

    ``batches``/``epochs``: each run's metric rows (store order) by run id. Training metrics
    are ``chunk_means`` of the batch rows; validation metrics the epoch rows, at the epoch's
    last step, its number or its time. ``x``: a key of ``X_AXES``; "time" counts seconds
    since the run's first row (minutes when the longest run exceeds ``MINUTES_AFTER``).
    ``smoothing``: ``ema``'s weight; above 0 the raw points stay as a faint line behind.
    ``y_range``: the y axis range as plotly takes it (log10 units with ``log_y``), e.g.
    ``charts.y_extent`` of several figures. ``labels``: legend name by run id (default
    "#id variant s<seed>"). ``uirevision`` keeps the user's zoom across redraws.
    A chart without a single point says "no points yet".
    """
    if metric not in OVERLAY_METRICS:
        raise ValueError(f"metric must be one of {list(OVERLAY_METRICS)}. Received: {metric!r}")
    if x not in X_AXES:
        raise ValueError(f"x must be one of {list(X_AXES)}. Received: {x!r}")
    ema([], smoothing)  # checks the weight before any work
    curves = [(run, *_curve(run, batches, epochs, metric, x)) for run in runs]
    curves = [(run, xs, ys) for run, xs, ys in curves if len(xs)]
    x_title = X_AXES[x]
    if x == "time":
        minutes = any(xs[-1] > MINUTES_AFTER for _, xs, _ in curves)
        curves = [(run, xs / 60.0 if minutes else xs, ys) for run, xs, ys in curves]
        x_title += " (min)" if minutes else " (s)"

    seeds = sorted({run.seed for run in runs})
    dashes = {seed: DASHES[rank % len(DASHES)] for rank, seed in enumerate(seeds)}
    traces = []  # dicts, validated once by go.Figure: each go.Scatter would cost ~1 ms
    for run, xs, ys in curves:
        name = (labels or {}).get(run.id) or f"#{run.id} {run.variant} s{run.seed}"
        style = {"color": variant_color(run.variant), "dash": dashes[run.seed]}
        common = {"type": "scatter", "x": xs, "mode": "lines", "legendgroup": str(run.id)}
        if smoothing > 0:
            raw = {"y": ys, "line": {**style, "width": 1}, "opacity": RAW_OPACITY}
            traces.append({**common, **raw, "showlegend": False, "hoverinfo": "skip"})
        traces.append(
            {
                **common,
                "y": ema(ys, smoothing) if smoothing > 0 else ys,
                "name": name,
                "line": {**style, "width": 2},
                "hovertemplate": "%{fullData.name}: %{y:.4f}<extra></extra>",
            }
        )
    title = OVERLAY_METRICS[metric]
    layout = {
        "title": {"text": title},
        "xaxis": {"title": {"text": x_title}},
        "yaxis": {"title": {"text": title}},
        "height": height,
        "hovermode": "x unified",
        "template": "plotly_white",
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "uirevision": uirevision,
    }
    fig = go.Figure(data=traces, layout=layout)
    if log_y:
        fig.update_yaxes(type="log")
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    if not curves:
        fig.add_annotation(
            text="no points yet", xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False
        )
    return fig


def _curve(run: RunRecord, batches, epochs, metric: str, x: str) -> tuple[np.ndarray, ...]:
    """(x, y) of one run's ``metric``, in order; x in seconds since its first row for time."""
    batch_rows, epoch_rows = batches.get(run.id, ()), epochs.get(run.id, ())
    chunk_x, epoch_x = _X_COLUMNS[x]
    if metric in TRAINING_METRICS:
        chunks = _chunks(batch_rows, run.steps_per_epoch)
        xs, ys = chunks[chunk_x], chunks[metric]
    else:
        xs, ys = _column(epoch_rows, epoch_x), _column(epoch_rows, metric)
    if x == "time" and len(xs):
        first = min(row["t"] for rows in (batch_rows, epoch_rows) for row in rows)
        xs = xs - first
    return xs, ys
