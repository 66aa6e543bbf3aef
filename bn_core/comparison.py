"""Comparing runs: curves over seeds (mean, std), their figures and the per-variant summary.

Plain data in (result dicts from ``RunStore.result_dicts``), DataFrames and plotly figures
out; no Streamlit, no TensorFlow. The Compare page is a thin script over these functions.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from bn_core.charts import METRIC_TITLES
from bn_core.config import TrainConfig
from bn_core.results import HISTORY_KEYS
from bn_core.summary import BASELINE, curves_frame, first_epoch_reaching, summary_table
from bn_core.variants import VARIANT_NAMES

COMPARE_METRICS: tuple[str, ...] = ("val_accuracy", "val_loss", "accuracy", "loss")
# Keys that differ between runs by design; config_differences reports the others.
BY_DESIGN: tuple[str, ...] = ("variant", "seed")


def run_curves(results: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Long table, one row per (run, epoch): run_id, variant, seed, epoch, HISTORY_KEYS."""
    return curves_frame(list(results), keys=("run_id", "variant", "seed"))


def group_curves(curves: pd.DataFrame | Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Mean, sample std (ddof=1; NaN for one run) and n per (variant, epoch, metric).

    Takes ``run_curves``' frame or the results themselves. Rows: variant, epoch, metric,
    mean, std, n, variants in first-seen order.
    """
    frame = curves if isinstance(curves, pd.DataFrame) else run_curves(curves)
    columns = ["variant", "epoch", "metric", "mean", "std", "n"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    long = frame.melt(
        id_vars=["variant", "epoch"], value_vars=list(HISTORY_KEYS), var_name="metric"
    ).dropna(subset=["value"])
    stats = (
        long.groupby(["variant", "epoch", "metric"], sort=False)["value"]
        .agg(mean="mean", std="std", n="count")
        .reset_index()
    )
    order = {v: i for i, v in enumerate(dict.fromkeys(frame["variant"]))}
    stats = stats.sort_values(["variant", "metric", "epoch"], key=_variant_key(order))
    return stats[columns].reset_index(drop=True)


def _variant_key(order: dict[str, int]):
    return lambda col: col.map(order) if col.name == "variant" else col


def variant_color(variant: str, alpha: float | None = None) -> str:
    """A fixed colour per variant (same in every chart); with alpha, an rgba() string."""
    names = list(VARIANT_NAMES)
    index = names.index(variant) if variant in names else len(names) + sum(map(ord, variant))
    color = qualitative.Plotly[index % len(qualitative.Plotly)]
    if alpha is None:
        return color
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def band_figure(grouped: pd.DataFrame, metric: str, *, height: int = 380) -> go.Figure:
    """One line per variant of ``metric`` against epoch; where a variant has several seeds, the
    line is their mean with a ±1 std band and the legend says how many seeds."""
    fig = go.Figure()
    rows = grouped[grouped["metric"] == metric]
    for variant, g in rows.groupby("variant", sort=False):
        g = g.sort_values("epoch")
        n = int(g["n"].max())
        name = f"{variant} (mean ± std, {n} seeds)" if n > 1 else str(variant)
        if n > 1:
            std = g["std"].fillna(0.0)
            band = {"x": g["epoch"], "mode": "lines", "line": {"width": 0}, "hoverinfo": "skip"}
            common = {"legendgroup": str(variant), "showlegend": False}
            fig.add_trace(go.Scatter(y=g["mean"] - std, name=f"{variant} -1 std", **band, **common))
            fig.add_trace(
                go.Scatter(
                    y=g["mean"] + std, name=f"{variant} +1 std", fill="tonexty",
                    fillcolor=variant_color(str(variant), 0.2), **band, **common,
                )
            )  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=g["epoch"], y=g["mean"], mode="lines+markers", name=name,
                legendgroup=str(variant), line={"color": variant_color(str(variant))},
                customdata=list(zip(g["std"].fillna(0.0), g["n"], strict=True)),
                hovertemplate="epoch %{x}: %{y:.4f} ± %{customdata[0]:.4f} (n=%{customdata[1]})",
            )
        )  # fmt: skip
    title = METRIC_TITLES.get(metric, metric)
    fig.update_layout(
        title=title, xaxis_title="epoch", yaxis_title=title, template="plotly_white",
        height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10}, showlegend=True,
        legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0},
    )  # fmt: skip
    _whole_epochs(fig, rows["epoch"])
    return fig


def _whole_epochs(fig: go.Figure, epochs: pd.Series) -> None:
    """Epoch-axis ticks on whole epochs when there are few of them (no '1.5')."""
    if len(epochs) and epochs.max() <= 15:
        fig.update_xaxes(tick0=1, dtick=1)


def small_multiples(curves: pd.DataFrame, metric: str = "val_accuracy") -> go.Figure:
    """One panel per variant (side by side, shared y axis): each seed's ``metric`` as a thin
    line and, with several seeds, their mean in bold."""
    variants = list(dict.fromkeys(curves["variant"]))
    fig = make_subplots(
        rows=1, cols=max(len(variants), 1), shared_yaxes=True, subplot_titles=variants,
        horizontal_spacing=0.02 if len(variants) > 3 else 0.05,
    )  # fmt: skip
    for col, variant in enumerate(variants, start=1):
        rows = curves[curves["variant"] == variant]
        seeds = list(dict.fromkeys(rows["run_id"]))
        for run_id in seeds:
            run = rows[rows["run_id"] == run_id]
            fig.add_trace(
                go.Scatter(
                    x=run["epoch"], y=run[metric], mode="lines", showlegend=False,
                    name=f"#{run_id} seed {run['seed'].iloc[0]}",
                    line={"width": 1, "color": variant_color(variant, 0.55)},
                ),
                row=1, col=col,
            )  # fmt: skip
        if len(seeds) > 1:
            mean = rows.groupby("epoch")[metric].mean()
            fig.add_trace(
                go.Scatter(
                    x=mean.index, y=mean.values, mode="lines", showlegend=False,
                    name=f"{variant} mean", line={"width": 3, "color": variant_color(variant)},
                ),
                row=1, col=col,
            )  # fmt: skip
        fig.update_xaxes(title_text="epoch", row=1, col=col)
    fig.update_yaxes(title_text=METRIC_TITLES.get(metric, metric), row=1, col=1)
    _whole_epochs(fig, curves["epoch"])
    fig.update_layout(
        title=f"{METRIC_TITLES.get(metric, metric)} per variant (thin: one seed each)",
        template="plotly_white", height=330, margin={"l": 10, "r": 10, "t": 70, "b": 10},
    )  # fmt: skip
    return fig


def config_differences(
    configs: Iterable[TrainConfig | dict[str, Any]], ignore: Iterable[str] = ()
) -> list[str]:
    """Config keys (TrainConfig field order) whose values are not the same in all ``configs``."""
    dicts = [c.to_dict() if isinstance(c, TrainConfig) else dict(c) for c in configs]
    skip = set(ignore)
    keys = [f.name for f in dataclasses.fields(TrainConfig)]
    keys += sorted({k for d in dicts for k in d} - set(keys))
    return [k for k in keys if k not in skip and len({repr(d.get(k)) for d in dicts}) > 1]


SUMMARY_COLUMNS = (
    "variant",
    "runs",
    "seeds",
    "completed",
    "test_accuracy_mean",
    "test_accuracy_std",
    "best_val_accuracy",
    "epoch_reaching_baseline_best",
    "mean_epoch_seconds",
    "images_per_second",
    "config",
)


def variant_summary(results: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per variant (study order): runs, seeds, completed runs, test accuracy mean and
    sample std (over runs that have one), best validation accuracy (mean over runs of each
    run's best), the first epoch at which the variant's MEAN validation curve reached the best
    of plain lenet's mean curve, mean seconds per epoch, median images/s over all epochs,
    and ``config``: the values of the settings that differ between the given runs (besides
    variant and seed), e.g. "epsilon=0.001" ("a|b" when they differ within the variant)."""
    per_run = summary_table(list(results))
    grouped = group_curves(list(results))
    val = grouped[grouped["metric"] == "val_accuracy"]
    base = val[val["variant"] == BASELINE]
    target = base["mean"].max() if not base.empty else None
    differing = config_differences([r["config"] for r in results], ignore=BY_DESIGN)
    variants = list(dict.fromkeys(r["variant"] for r in results))
    variants.sort(key=lambda v: VARIANT_NAMES.index(v) if v in VARIANT_NAMES else 99)
    rows = []
    for variant in variants:
        mine = [r for r in results if r["variant"] == variant]
        table = per_run[per_run["variant"] == variant]
        tests = [r["test_accuracy"] for r in mine if r.get("test_accuracy") is not None]
        curve = val[val["variant"] == variant].sort_values("epoch")["mean"].tolist()
        seconds = [s for r in mine for s in r["history"]["seconds"] if s is not None]
        speeds = [s for r in mine for s in r["history"]["images_per_second"] if s is not None]
        rows.append(
            {
                "variant": variant,
                "runs": len(mine),
                "seeds": ", ".join(str(r.get("seed", r["config"].get("seed"))) for r in mine),
                "completed": sum(r["status"] == "completed" for r in mine),
                "test_accuracy_mean": statistics.fmean(tests) if tests else None,
                "test_accuracy_std": statistics.stdev(tests) if len(tests) > 1 else None,
                "best_val_accuracy": _mean(table["best_val_accuracy"]),
                "epoch_reaching_baseline_best": (
                    None
                    if target is None or pd.isna(target)
                    else first_epoch_reaching(curve, float(target))
                ),
                "mean_epoch_seconds": statistics.fmean(seconds) if seconds else None,
                "images_per_second": statistics.median(speeds) if speeds else None,
                "config": ", ".join(_values_text(k, mine) for k in differing),
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def _values_text(key: str, results: Sequence[dict[str, Any]]) -> str:
    values = list(dict.fromkeys(_show(r["config"].get(key)) for r in results))
    return f"{key}={'|'.join(values)}"


def _show(value: Any) -> str:
    return "default" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _mean(values: Iterable[Any]) -> float | None:
    kept = [float(v) for v in values if v is not None and not pd.isna(v)]
    return statistics.fmean(kept) if kept else None


def summary_display(summary: pd.DataFrame) -> pd.DataFrame:
    """``variant_summary`` for reading: test accuracy as 'mean ± std', rounded numbers."""

    def fmt(value: Any, spec: str) -> str:
        return "–" if value is None or pd.isna(value) else format(value, spec)

    out = pd.DataFrame({"variant": summary["variant"], "runs": summary["runs"]})
    out["seeds"] = summary["seeds"]
    out["test accuracy"] = [
        fmt(m, ".4f") + ("" if s is None or pd.isna(s) else f" ± {s:.4f}")
        for m, s in zip(summary["test_accuracy_mean"], summary["test_accuracy_std"], strict=True)
    ]
    out["best val accuracy"] = [fmt(v, ".4f") for v in summary["best_val_accuracy"]]
    out[f"epoch reaching {BASELINE}'s best"] = [
        fmt(v, ".0f") for v in summary["epoch_reaching_baseline_best"]
    ]
    out["s / epoch"] = [fmt(v, ".1f") for v in summary["mean_epoch_seconds"]]
    out["images/s"] = [fmt(v, ",.0f") for v in summary["images_per_second"]]
    out["config differences"] = summary["config"]
    return out
