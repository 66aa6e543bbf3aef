"""Plotly figure builders: a DataFrame in, a Figure out (no TensorFlow, no UI)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

METRIC_TITLES = {
    "val_accuracy": "Validation accuracy",
    "val_loss": "Validation loss",
    "accuracy": "Training accuracy",
    "loss": "Training loss",
}


def rgba(color: str, alpha: float) -> str:
    """'#636EFA', 0.2 -> 'rgba(99, 110, 250, 0.2)': a palette colour made transparent."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red}, {green}, {blue}, {alpha})"


def line(
    x, y, name: str, color: str, *, mode: str = "lines", group: str | None = None, style=None, **kw
) -> go.Scatter:
    """One named curve in ``color``: ``style`` adds to its line (width, dash), ``group`` is its
    legend group, ``kw`` goes to the trace as it is (markers, hover)."""
    line_style = {"color": color, **(style or {})}
    return go.Scatter(x=x, y=y, mode=mode, name=name, legendgroup=group, line=line_style, **kw)


def add_band(
    fig: go.Figure, x, low, high, fillcolor: str, names: tuple[str, str] | None = None, **common
) -> None:
    """A shaded band from ``low`` to ``high`` over ``x``: two line-less traces, the second
    filled down to the first, neither hoverable. ``common`` goes to both (legendgroup, ...)."""
    edge = {"x": x, "mode": "lines", "line": {"width": 0}, "hoverinfo": "skip", **common}
    low_name, high_name = names or (None, None)
    fig.add_trace(go.Scatter(y=low, name=low_name, **edge))
    fig.add_trace(go.Scatter(y=high, name=high_name, fill="tonexty", fillcolor=fillcolor, **edge))


def metric_figure(curves: pd.DataFrame, metric: str, title: str | None = None) -> go.Figure:
    """One line per variant of ``metric`` against epoch, from ``summary.curves_frame``."""
    fig = go.Figure()
    for variant, rows in curves.groupby("variant", sort=False):
        fig.add_trace(
            go.Scatter(x=rows["epoch"], y=rows[metric], mode="lines+markers", name=str(variant))
        )
    fig.update_layout(
        title=title or METRIC_TITLES.get(metric, metric),
        xaxis_title="epoch",
        yaxis_title=METRIC_TITLES.get(metric, metric),
        template="plotly_white",
        legend_title="variant",
    )
    return fig


def y_extent(figs: Iterable[go.Figure], log: bool = False) -> tuple[float, float] | None:
    """(low, high) over the y values of every visible trace of ``figs`` (finite values only;
    positive ones only when ``log``), widened by 5% of its span on each side: in data units,
    or in log10 units when ``log`` (what plotly's range of a log axis takes). None when no
    trace has such a value."""
    low, high = math.inf, -math.inf
    for fig in figs:
        for trace in fig.data:
            if trace.visible not in (None, True) or getattr(trace, "y", None) is None:
                continue
            y = np.asarray(trace.y, dtype=float)  # None -> NaN
            y = y[np.isfinite(y) & (y > 0)] if log else y[np.isfinite(y)]
            if y.size:
                low, high = min(low, float(y.min())), max(high, float(y.max()))
    if low > high:
        return None
    if log:
        low, high = math.log10(low), math.log10(high)
    # A flat line still gets a visible band around it.
    pad = 0.05 * (high - low) if high > low else 0.05 * (abs(high) or 1.0)
    return low - pad, high + pad


def share_y(figs: Sequence[go.Figure], log: bool = False) -> None:
    """Give every figure of ``figs`` the one y range ``y_extent(figs, log)``, so charts of the
    same quantity read on one scale (each autoscaled alone magnifies its own noise). Nothing
    changes when they hold no value."""
    extent = y_extent(figs, log)
    if extent is not None:
        for fig in figs:
            fig.update_yaxes(range=list(extent))
