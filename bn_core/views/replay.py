"""The Window page's data shaping, figure and table over replay files (TF-free).

The files themselves (format, validation, the replay subprocess) are ``bn_core.runs.replays.files``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from bn_core.constants import EMA, EPOCH
from bn_core.runs.replays import ROW_KEYS

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
                    **{k: row[k] for k in ROW_KEYS},
                    "trained": trained,
                }
            )
    columns = ["run_id", "run", *ROW_KEYS, "trained"]
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
                x=rows["choice"],
                y=rows["test_accuracy"],
                name=str(run),
                mode="lines+markers",
                legendgroup=str(run),
                line={"color": color},
                customdata=hover,
                marker={
                    "color": color,
                    "size": 9,
                    "symbol": ["circle-open" if c else "circle" for c in rows["clipped"]],
                },
                hovertemplate="%{x}: %{y:.4f}<br>%{customdata}<extra>%{fullData.name}</extra>",
            )
        )
        own = rows[rows["trained"]]
        if not own.empty:
            fig.add_trace(
                go.Scatter(
                    x=own["choice"],
                    y=own["test_accuracy"],
                    mode="markers",
                    name=f"{run}: trained window",
                    legendgroup=str(run),
                    showlegend=True,
                    marker={
                        "color": color,
                        "size": 18,
                        "symbol": "star",
                        "line": {"width": 1, "color": "black"},
                    },
                    hovertemplate="trained window W = %{x}: %{y:.4f}<extra></extra>",
                )
            )
    fig.update_layout(
        title="Test accuracy by inference statistics",
        xaxis_title="statistics from the last W training batches (epoch: all; EMA: Keras')",
        yaxis_title="test accuracy",
        template="plotly_white",
        height=height,
        legend={"orientation": "h", "yanchor": "top", "y": -0.2},
    )
    fig.update_xaxes(
        type="category", categoryorder="array", categoryarray=choice_order(frame["choice"])
    )
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
