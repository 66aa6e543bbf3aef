"""The Compare page's figures and its readable summary table: curves over seeds (mean ± std
bands, each seed's line), small multiples per variant, and ``variant_summary`` formatted.

The numbers come from ``bn_core.analysis.comparison``; this module only draws them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from bn_core.analysis.comparison import ARM_SEP, seeds_text
from bn_core.analysis.summary import BASELINE
from bn_core.variants import VARIANT_NAMES
from bn_core.views.charts import METRIC_TITLES, add_band, line, rgba

SMALL_MULTIPLES_PER_ROW = 5  # the original study's five variants fit one row


def variant_color(variant: str, alpha: float | None = None) -> str:
    """A fixed colour per variant (same in every chart; an arm has its variant's colour); with
    alpha, an rgba() string."""
    variant = variant.split(ARM_SEP)[0]
    names = list(VARIANT_NAMES)
    index = names.index(variant) if variant in names else len(names) + sum(map(ord, variant))
    color = qualitative.Plotly[index % len(qualitative.Plotly)]
    return color if alpha is None else rgba(color, alpha)


def band_figure(
    grouped: pd.DataFrame,
    metric: str,
    *,
    curves: pd.DataFrame | None = None,
    height: int = 380,
) -> go.Figure:
    """One line per variant of ``metric`` against epoch; where a variant has several seeds, the
    line is their mean with a ±1 std band. Legend and title state the number of seeds. With
    ``curves`` (``run_curves``' frame), each seed's own curve is overlaid as a thin line."""
    fig = go.Figure()
    rows = grouped[grouped["metric"] == metric]
    counts, dashes = [], _arm_dashes(rows["variant"])
    for variant, g in rows.groupby("variant", sort=False):
        g = g.sort_values("epoch")
        n = int(g["n"].max())
        counts.append(n)
        name = f"{variant} (mean ± std, {n} seeds)" if n > 1 else f"{variant} (1 seed)"
        common = {"legendgroup": str(variant), "showlegend": False}
        if n > 1:
            std = g["std"].fillna(0.0)
            names = (f"{variant} -1 std", f"{variant} +1 std")
            color = variant_color(str(variant), 0.2)
            add_band(fig, g["epoch"], g["mean"] - std, g["mean"] + std, color, names, **common)
        if curves is not None and n > 1:
            _seed_lines(fig, curves[curves["variant"] == variant], metric, str(variant), common)
        fig.add_trace(
            line(
                g["epoch"],
                g["mean"],
                name,
                variant_color(str(variant)),
                mode="lines+markers",
                group=str(variant),
                style={"dash": dashes[variant]},
                customdata=list(zip(g["std"].fillna(0.0), g["n"], strict=True)),
                hovertemplate="epoch %{x}: %{y:.4f} ± %{customdata[0]:.4f} (n=%{customdata[1]})",
            )
        )
    title = METRIC_TITLES.get(metric, metric)
    fig.update_layout(
        title=f"{title} ({seeds_text(counts)})",
        xaxis_title="epoch",
        yaxis_title=title,
        template="plotly_white",
        height=height,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        showlegend=True,
        legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0},
    )
    _whole_epochs(fig, rows["epoch"])
    return fig


def _arm_dashes(labels: Iterable[str]) -> dict[str, str]:
    """A line style per arm: the arms of one variant share its colour, so they differ in dash."""
    seen: dict[str, int] = {}
    out = {}
    for label in dict.fromkeys(labels):
        i = seen[label.split(ARM_SEP)[0]] = seen.get(label.split(ARM_SEP)[0], -1) + 1
        out[label] = ("solid", "dash", "dot", "dashdot", "longdash")[i % 5]
    return out


def _seed_lines(fig: go.Figure, runs: pd.DataFrame, metric: str, variant: str, common) -> None:
    """Each run's curve as a thin line in its variant's colour."""
    for run_id, run in runs.groupby("run_id", sort=False):
        fig.add_trace(
            go.Scatter(
                x=run["epoch"],
                y=run[metric],
                mode="lines",
                name=f"{variant} #{run_id} seed {run['seed'].iloc[0]}",
                line={"width": 1, "color": variant_color(variant, 0.6)},
                **common,
            )
        )


def _whole_epochs(fig: go.Figure, epochs: pd.Series) -> None:
    """Epoch-axis ticks on whole epochs when there are few of them (no '1.5')."""
    if len(epochs) and epochs.max() <= 15:
        fig.update_xaxes(tick0=1, dtick=1)


def small_multiples(curves: pd.DataFrame, metric: str = "val_accuracy") -> go.Figure:
    """One panel per variant (up to five a row, shared y axis): each seed's ``metric`` as a
    thin line and, with several seeds, their mean in bold."""
    variants = list(dict.fromkeys(curves["variant"]))
    counts = [curves.loc[curves["variant"] == v, "run_id"].nunique() for v in variants]
    titles = [
        f"{v.replace(ARM_SEP, '<br>')} ({n} seed{'s' * (n != 1)})"
        for v, n in zip(variants, counts, strict=True)
    ]
    cols = min(max(len(variants), 1), SMALL_MULTIPLES_PER_ROW)
    n_rows = -(-max(len(variants), 1) // cols)
    fig = make_subplots(
        rows=n_rows,
        cols=cols,
        shared_yaxes=True,
        subplot_titles=titles,
        horizontal_spacing=0.02 if cols > 3 else 0.05,
        vertical_spacing=0.32 / n_rows,
    )
    for i, variant in enumerate(variants):
        row, col = divmod(i, cols)
        row, col = row + 1, col + 1
        rows = curves[curves["variant"] == variant]
        seeds = list(dict.fromkeys(rows["run_id"]))
        for run_id in seeds:
            run = rows[rows["run_id"] == run_id]
            fig.add_trace(
                go.Scatter(
                    x=run["epoch"],
                    y=run[metric],
                    mode="lines",
                    showlegend=False,
                    name=f"#{run_id} seed {run['seed'].iloc[0]}",
                    line={"width": 1, "color": variant_color(variant, 0.55)},
                ),
                row=row,
                col=col,
            )
        if len(seeds) > 1:
            mean = rows.groupby("epoch")[metric].mean()
            fig.add_trace(
                go.Scatter(
                    x=mean.index,
                    y=mean.values,
                    mode="lines",
                    showlegend=False,
                    name=f"{variant} mean",
                    line={"width": 3, "color": variant_color(variant)},
                ),
                row=row,
                col=col,
            )
        if i + cols >= len(variants):  # nothing below this panel
            fig.update_xaxes(title_text="epoch", row=row, col=col)
    for row in range(1, n_rows + 1):
        fig.update_yaxes(title_text=METRIC_TITLES.get(metric, metric), row=row, col=1)
    _whole_epochs(fig, curves["epoch"])
    fig.update_layout(
        title=f"{METRIC_TITLES.get(metric, metric)} per variant (thin: one seed each; "
        f"{seeds_text(counts)})",
        template="plotly_white",
        height=330 * n_rows,
        margin={"l": 10, "r": 10, "t": 90 if ARM_SEP in "".join(variants) else 70, "b": 10},
    )
    return fig


def summary_display(summary: pd.DataFrame) -> pd.DataFrame:
    """``variant_summary`` for reading: 'mean ± std', '[low, high]', signed differences,
    'x14.0' speed-ups, rounded numbers, '–' where a value is undefined."""

    def fmt(value: Any, spec: str) -> str:
        return "–" if value is None or pd.isna(value) else format(value, spec)

    out = pd.DataFrame({"variant": summary["variant"], "runs": summary["runs"]})
    out["seeds"] = summary["seeds"]
    out["no learning"] = [  # runs at chance accuracy: flagged, not hidden
        f"⚠ {k} of {n}" if k else "–"
        for k, n in zip(summary["no_learning"], summary["runs"], strict=True)
    ]
    out["n"] = summary["n"]
    out["test accuracy"] = [
        fmt(m, ".4f") + ("" if s is None or pd.isna(s) else f" ± {s:.4f}")
        for m, s in zip(summary["test_accuracy_mean"], summary["test_accuracy_std"], strict=True)
    ]
    out["95% CI"] = [
        "–" if lo is None or pd.isna(lo) else f"[{lo:.4f}, {hi:.4f}]"
        for lo, hi in zip(
            summary["test_accuracy_ci95_low"], summary["test_accuracy_ci95_high"], strict=True
        )
    ]
    out[f"Δ vs {BASELINE}"] = [fmt(v, "+.4f") for v in summary["diff_vs_baseline"]]
    out["p (Welch)"] = [fmt(v, ".3g") for v in summary["p_value"]]
    out["best val accuracy"] = [fmt(v, ".4f") for v in summary["best_val_accuracy"]]
    out[f"epoch reaching {BASELINE}'s best"] = [
        fmt(v, ".0f") for v in summary["epoch_reaching_baseline_best"]
    ]
    out[f"steps to {BASELINE}'s best"] = [fmt(v, ",.0f") for v in summary["steps_to_baseline_best"]]
    out["speed-up"] = ["–" if v is None or pd.isna(v) else f"×{v:.2f}" for v in summary["speedup"]]
    out["s / epoch"] = [fmt(v, ".1f") for v in summary["mean_epoch_seconds"]]
    out["images/s"] = [fmt(v, ",.0f") for v in summary["images_per_second"]]
    out["config differences"] = summary["config"]
    return out
