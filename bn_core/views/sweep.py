"""The Sweep page's figure: final test accuracy against the swept value, diverged runs and runs
that learned nothing marked (never hidden, never plotted as zero). The table it draws is
``bn_core.analysis.study``'s."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from bn_core.analysis.study import SWEEP_PARAMETERS, sweep_points, swept_parameters
from bn_core.views.comparison import variant_color
from bn_core.vocabulary import RunStatus


def sweep_figure(table: pd.DataFrame, *, height: int = 420) -> go.Figure:
    """Final test accuracy against the (first) swept parameter, one line per variant (and
    value of any other swept parameter): mean ± std over seeds as error bars; each diverged
    run an 'x' above the data, hover text "diverged"; each completed run that learned nothing
    (``no_learning``) an open circle at its own accuracy, hover text "no learning"."""
    swept = swept_parameters(table) or ["lr_multiplier"]
    x_key, others = swept[0], swept[1:]
    points = sweep_points(table)
    finite = pd.to_numeric(points["mean"], errors="coerce").dropna()
    low, high = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
    top = high + max(high - low, 0.02) * 0.12  # diverged runs are drawn on this line
    fig = go.Figure()
    for series, g in points.groupby(["variant", *others], sort=False):
        series = series if isinstance(series, tuple) else (series,)
        variant = str(series[0])
        label = " · ".join(
            [variant, *(f"{k}={v}" for k, v in zip(others, series[1:], strict=True))]
        )
        sub = table[table["variant"] == variant]
        for key, value in zip(others, series[1:], strict=True):
            sub = sub[sub[key] == value]
        n = sub["seed"].nunique()
        name = f"{label} ({n} seed{'s' * (n != 1)})"
        color = variant_color(variant)
        fig.add_trace(
            go.Scatter(
                x=g[x_key],
                y=g["mean"],
                name=name,
                mode="lines+markers",
                legendgroup=label,
                line={"color": color},
                connectgaps=False,
                error_y={"type": "data", "array": g["std"].fillna(0.0).tolist(), "visible": True},
                customdata=g[[RunStatus.COMPLETED.value, RunStatus.DIVERGED.value]].values.tolist(),
                hovertemplate=f"{label}<br>%{{x}}: %{{y:.4f}} (n=%{{customdata[0]}}, "
                "diverged %{customdata[1]})<extra></extra>",
            )
        )
        diverged = sub[sub["status"] == RunStatus.DIVERGED]
        if len(diverged):
            fig.add_trace(
                go.Scatter(
                    x=diverged[x_key],
                    y=[top] * len(diverged),
                    mode="markers",
                    name=f"{label}: diverged",
                    legendgroup=label,
                    showlegend=False,
                    marker={"symbol": "x", "size": 12, "color": color, "line": {"width": 1}},
                    hovertext=[f"{label} seed {s}: diverged" for s in diverged["seed"]],
                    hoverinfo="text",
                )
            )
        stuck = sub[sub["no_learning"] & sub["test_accuracy"].notna()]
        if len(stuck):
            fig.add_trace(
                go.Scatter(
                    x=stuck[x_key],
                    y=stuck["test_accuracy"],
                    mode="markers",
                    name=f"{label}: no learning",
                    legendgroup=label,
                    showlegend=False,
                    marker={"symbol": "circle-open", "size": 14, "color": color},
                    hovertext=[
                        f"{label} seed {s}: no learning (test accuracy {a:.4f}, chance 0.1)"
                        for s, a in zip(stuck["seed"], stuck["test_accuracy"], strict=True)
                    ],
                    hoverinfo="text",
                )
            )
    n_diverged = int((table["status"] == RunStatus.DIVERGED).sum())
    note = f"; ✕ = diverged ({n_diverged} run{'s' * (n_diverged != 1)})" if n_diverged else ""
    n_stuck = int((table["no_learning"] & table["test_accuracy"].notna()).sum())
    note += f"; ○ = no learning ({n_stuck} run{'s' * (n_stuck != 1)})" if n_stuck else ""
    fig.update_layout(
        title=f"Final test accuracy vs {SWEEP_PARAMETERS[x_key]} (mean ± std over seeds{note})",
        xaxis_title=SWEEP_PARAMETERS[x_key],
        yaxis_title="test accuracy",
        template="plotly_white",
        height=height,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0},
    )
    fig.update_xaxes(type="log", tickvals=sorted(table[x_key].dropna().unique().tolist()))
    return fig
