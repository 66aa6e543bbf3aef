"""Plotly figure builders: a DataFrame in, a Figure out (no TensorFlow, no UI)."""

from __future__ import annotations

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
