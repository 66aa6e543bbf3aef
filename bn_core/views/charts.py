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
