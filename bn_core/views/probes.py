"""Probe constants, and the data shaping and figures of the "Inside the network" page.

No TensorFlow here (the Streamlit process must never load it): ``bn_core.nn.probes`` measures
and takes its constants from this module, and the UI and presets import them from here.
The figures redraw Ioffe & Szegedy (2015), Figure 1: (a) accuracy against training steps,
(b, c) the 15th, 50th and 85th percentiles of a sigmoid's input over training, without and
with BN; plus each linear layer's gradient norm and BN's inference-vs-batch-statistics gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from bn_core.constants import GRAD_LAYERS
from bn_core.runs.store import RunRecord
from bn_core.variants import SITES, VARIANTS
from bn_core.views.charts import add_band, line, rgba, share_y

BAND_ALPHA = 0.18  # the 15th-85th percentile band under a median line
SCOPES = {"layer": "whole layer", "unit": "tracked unit (channel / unit 0)"}
_PALETTE = qualitative.Plotly
_LAYOUT = {
    "template": "plotly_white",
    "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
    "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1},
}
# Below the axes, where a long legend (or subplot titles) would collide with it at the top.
_LEGEND_BELOW = {"orientation": "h", "yanchor": "top", "y": -0.3, "xanchor": "left", "x": 0}

# ----------------------------------------------------------------------------- data shaping


def has_bn_at(run: RunRecord, site: str) -> bool:
    variant = VARIANTS.get(run.variant)
    return variant is not None and site in variant.bn_sites


def split_by_bn(runs: Iterable[RunRecord], site: str) -> tuple[list[RunRecord], list[RunRecord]]:
    """(runs without BN at ``site``, runs with BN there): the two panels of a site's row."""
    runs = list(runs)
    return [r for r in runs if not has_bn_at(r, site)], [r for r in runs if has_bn_at(r, site)]


def default_selection(runs: Sequence[RunRecord], probed: set[int]) -> list[int]:
    """The runs with probes of the newest group that has any (the page's default)."""
    with_probes = [r for r in runs if r.id in probed]
    if not with_probes:
        return []
    newest = max(with_probes, key=lambda r: r.id).group_id
    return [r.id for r in with_probes if r.group_id == newest]


def run_colors(run_ids: Sequence[int]) -> dict[int, str]:
    """One colour per run, the same in every chart of the page."""
    return {rid: _PALETTE[i % len(_PALETTE)] for i, rid in enumerate(sorted(run_ids))}


def percentile_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """``RunStore.probe_rows`` as a DataFrame of percentile rows only."""
    columns = ["run_id", "step", "epoch_progress", "site", "scope", "p15", "p50", "p85"]
    frame = pd.DataFrame(list(rows), columns=[*columns, "accuracy"])
    return frame.dropna(subset=["site"])[columns].reset_index(drop=True)


def accuracy_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per probe (run_id, step, epoch_progress, accuracy) from ``probe_rows``."""
    columns = ["run_id", "step", "epoch_progress", "accuracy"]
    frame = pd.DataFrame(list(rows), columns=[*columns, "site", "scope", "p15", "p50", "p85"])
    return frame[columns].drop_duplicates(["run_id", "step"]).reset_index(drop=True)


# ----------------------------------------------------------------------------- figures


def percentile_figure(
    frame: pd.DataFrame,
    runs: Sequence[RunRecord],
    site: str,
    scope: str,
    *,
    title: str,
    colors: dict[int, str],
    height: int = 300,
) -> go.Figure:
    """Figure 1(b, c) for ``site``: per run, the median of the activation's input as a line
    and the 15th-85th percentiles as a band, against training steps."""
    fig = go.Figure()
    for run in runs:
        rows = frame[(frame["run_id"] == run.id) & (frame["site"] == site)]
        rows = rows[rows["scope"] == scope].sort_values("step")
        if rows.empty:
            continue
        color, name = colors[run.id], f"#{run.id} {run.variant} s{run.seed}"
        band = {"legendgroup": name, "showlegend": False}
        add_band(fig, rows["step"], rows["p85"], rows["p15"], rgba(color, BAND_ALPHA), **band)
        fig.add_trace(
            line(
                rows["step"],
                rows["p50"],
                name,
                color,
                group=name,
                style={"width": 2},
                customdata=rows[["p15", "p85"]],
                hovertemplate="step %{x}<br>median %{y:.3g}<br>15–85%: "
                "%{customdata[0]:.3g} – %{customdata[1]:.3g}<extra></extra>",
            )
        )
    fig.update_layout(
        title=title,
        xaxis_title="training step",
        yaxis_title="activation input",
        height=height,
        **_LAYOUT,
    )
    return fig


def accuracy_figure(
    frame: pd.DataFrame, labels: dict[int, str], colors: dict[int, str], height: int = 380
) -> go.Figure:
    """Figure 1(a): accuracy on the probe batch (inference mode) against training steps."""
    fig = go.Figure()
    for run_id, rows in frame.groupby("run_id", sort=True):
        fig.add_trace(
            line(
                rows["step"],
                rows["accuracy"],
                labels[run_id],
                colors[run_id],
                mode="lines+markers",
                marker={"size": 4},
            )
        )
    fig.update_layout(
        title="Probe-batch accuracy",
        xaxis_title="training step",
        yaxis_title="accuracy",
        height=height,
        **_LAYOUT,
    )
    return fig


def grad_norm_figure(
    rows: Sequence[dict[str, Any]],
    labels: dict[int, str],
    colors: dict[int, str],
    height: int = 380,
) -> go.Figure:
    """One panel per linear layer: ||d loss / d kernel|| against steps, log y, a line per run."""
    frame = pd.DataFrame(list(rows), columns=["run_id", "step", "layer", "norm"])
    fig = make_subplots(
        rows=1, cols=len(GRAD_LAYERS), subplot_titles=GRAD_LAYERS, shared_yaxes=True
    )
    for col, layer in enumerate(GRAD_LAYERS, start=1):
        for run_id, part in frame[frame["layer"] == layer].groupby("run_id", sort=True):
            fig.add_trace(
                line(
                    part["step"],
                    part["norm"],
                    labels[run_id],
                    colors[run_id],
                    group=str(run_id),
                    style={"width": 1.5},
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
    fig.update_yaxes(type="log")
    fig.update_yaxes(title_text="gradient L2 norm", row=1, col=1)
    fig.update_xaxes(title_text="step")
    fig.update_layout(title="Gradient norm per layer", height=height, **_LAYOUT)
    fig.update_layout(legend=_LEGEND_BELOW, margin={"t": 70})  # room for the panel titles
    return fig


def mode_gap_figure(
    rows: Sequence[dict[str, Any]],
    labels: dict[int, str],
    colors: dict[int, str],
    height: int = 380,
) -> go.Figure:
    """Validation accuracy per epoch with BN's inference statistics (solid) and with batch
    statistics (dashed), on the same images: the gap is what Algorithm 2's estimate costs."""
    frame = pd.DataFrame(list(rows), columns=["run_id", "epoch", "inference", "batch_stats"])
    fig = go.Figure()
    for run_id, part in frame.groupby("run_id", sort=True):
        for column, dash, mode in (
            ("inference", "solid", "inference"),
            ("batch_stats", "dash", "batch statistics"),
        ):
            fig.add_trace(
                line(
                    part["epoch"],
                    part[column],
                    f"{labels[run_id]} · {mode}",
                    colors[run_id],
                    mode="lines+markers",
                    group=str(run_id),
                    style={"dash": dash},
                )
            )
    fig.update_layout(
        title="Validation accuracy: inference vs batch statistics",
        xaxis_title="epoch",
        yaxis_title="validation accuracy",
        height=height,
        **_LAYOUT,
    )
    fig.update_layout(legend=_LEGEND_BELOW)
    fig.update_xaxes(dtick=1)
    return fig


def mode_gap_table(rows: Sequence[dict[str, Any]], labels: dict[int, str]) -> pd.DataFrame:
    """Per run, the last epoch's accuracies in both modes and their gap (batch - inference)."""
    frame = pd.DataFrame(list(rows), columns=["run_id", "epoch", "inference", "batch_stats"])
    last = frame.sort_values("epoch").groupby("run_id", sort=True).tail(1)
    return pd.DataFrame(
        {
            "run": [labels[r] for r in last["run_id"]],
            "epoch": last["epoch"].to_numpy(),
            "inference": last["inference"].to_numpy(),
            "batch statistics": last["batch_stats"].to_numpy(),
            "gap": (last["batch_stats"] - last["inference"]).to_numpy(),
        }
    )


def report_figures(store, runs: Sequence[RunRecord]) -> list[tuple[str, go.Figure]]:
    """Figure 1 for a report: per site, plain beside BN (whole layer), probe accuracy,
    gradient norms and the mode gap, for the ``runs`` of ``store`` that have probes."""
    ids = [r.id for r in runs]
    rows = store.probe_rows(ids)
    if not rows:
        return []
    probed = {row["run_id"] for row in rows}
    runs = [r for r in runs if r.id in probed]
    colors = run_colors([r.id for r in runs])
    labels = {r.id: f"{r.variant} seed {r.seed}" for r in runs}
    frame = percentile_frame(rows)
    figures = []
    for site in SITES:
        pair = []
        for group, what in zip(split_by_bn(runs, site), ("without BN", "with BN"), strict=True):
            if group:
                title = f"{site} {what}: 15th/50th/85th percentiles of the activation's input"
                fig = percentile_figure(frame, group, site, "layer", title=title, colors=colors)
                pair.append((title, fig))
        share_y([fig for _, fig in pair])  # plain and BN on one scale, as on the page
        figures.extend(pair)
    figures.append(
        ("Probe accuracy against steps", accuracy_figure(accuracy_frame(rows), labels, colors))
    )
    figures.append(
        ("Gradient norms per layer", grad_norm_figure(store.grad_norm_rows(ids), labels, colors))
    )
    gap = store.mode_gap_rows(ids)
    if gap:
        figures.append(
            (
                "Validation accuracy: inference vs batch statistics",
                mode_gap_figure(gap, labels, colors),
            )
        )
    return figures
