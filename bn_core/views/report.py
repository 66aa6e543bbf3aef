"""A study as one self-contained HTML file: environment, settings, statistics and every chart.

``build_report(results, title=...)`` returns the page as a string. plotly.js is embedded once
in the page's head (every chart is a div that uses it), so the file works offline and stays
one file. Library versions are read from the installed distributions' metadata: building a
report never imports TensorFlow.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import platform
from collections.abc import Iterable, Sequence
from importlib import metadata
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from bn_core.analysis import comparison as cmp
from bn_core.analysis import study
from bn_core.config import TrainConfig
from bn_core.views import comparison as cv
from bn_core.views.sweep import sweep_figure

# Distribution names whose versions the report states; the first installed of each tuple.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "keras": ("keras",),
    "numpy": ("numpy",),
    "pandas": ("pandas",),
    "scipy": ("scipy",),
    "plotly": ("plotly",),
    "streamlit": ("streamlit",),
}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f3f4f8; } .note { color: #555; font-size: 0.9rem; } .chart { margin: 1rem 0; }
"""


def environment() -> dict[str, str]:
    """Platform, CPU count, Python and library versions (from package metadata)."""
    info = {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "CPUs": str(os.cpu_count()),
        "python": platform.python_version(),
    }
    for name, dists in LIBRARIES.items():
        info[name] = next(
            (v for v in (_version(d) for d in dists) if v is not None), "not installed"
        )
    return info


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def settings_tables(results: Sequence[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the settings shared by every run: setting, value; one row per run with its variant,
    seed and the settings that differ)."""
    configs = [r["config"] for r in results]
    differing = cmp.config_differences(configs)
    keys = [k for k in TrainConfig().to_dict() if k not in differing]
    shared = pd.DataFrame(
        {"setting": keys, "value": [cmp.format_value(configs[0].get(k)) for k in keys]}
        if configs
        else {}
    )
    rows = [
        {
            "run": r.get("run_id") or i,
            **{k: cmp.format_value(r["config"].get(k)) for k in differing},
        }
        for i, r in enumerate(results, start=1)
    ]
    return shared, pd.DataFrame(rows, columns=["run", *differing])


def runs_table(results: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Every run: its variant (arm), seed, status, test accuracy, best validation accuracy and
    error, so failed and diverged runs are in the report too."""
    rows = []
    for i, r in enumerate(results, start=1):
        val = [v for v in r["history"]["val_accuracy"] if v is not None and not pd.isna(v)]
        rows.append(
            {
                "run": r.get("run_id") or i,
                "variant": r["variant"],
                "seed": r.get("seed", r["config"].get("seed")),
                "status": r["status"],
                "epochs": len(r["history"]["loss"]),
                "test accuracy": _number(r.get("test_accuracy")),
                "best val accuracy": _number(max(val) if val else None),
                "error": r.get("error") or "",
            }
        )
    return pd.DataFrame(rows)


def report_figures(results: Sequence[dict[str, Any]]) -> list[go.Figure]:
    """The report's charts: the four curves (mean ± std bands and each seed), validation
    accuracy per variant, and the sweep chart when the runs form a sweep."""
    labelled = cmp.label_arms(results)
    curves = cmp.run_curves(labelled)
    grouped = cmp.group_curves(curves)
    figures = [cv.band_figure(grouped, m, curves=curves) for m in cmp.COMPARE_METRICS]
    figures.append(cv.small_multiples(curves, "val_accuracy"))
    table = study.sweep_table(labelled)
    if study.swept_parameters(table):
        figures.append(sweep_figure(table))
    return figures


def build_report(
    results: Sequence[dict[str, Any]],
    *,
    title: str,
    preset: str | study.Preset | None = None,
    extra_figures: Iterable[go.Figure | tuple[str, go.Figure]] = (),
) -> str:
    """A complete HTML page (plotly.js embedded once, works offline) for ``results``
    (``TrainResult.to_dict()`` or ``RunStore.result_dicts`` shapes): title, date, machine and
    library versions, shared and differing settings, the per-variant statistics (n, mean ±
    std, 95% CI, difference and Welch p against lenet, speed-up), every run, every chart.
    ``extra_figures`` are appended, each a figure or a (heading, figure) pair."""
    results = list(results)
    parts = [f"<h1>{_esc(title)}</h1>"]
    created = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts.append(f"<p class='note'>Created {created} by BN Lab.</p>")
    if preset is not None:
        p = study.get_preset(preset) if isinstance(preset, str) else preset
        parts.append(f"<p><b>Preset {_esc(p.name)}: {_esc(p.title)}.</b> {_esc(p.description)}</p>")
    env = environment()
    env_table = pd.DataFrame({"": list(env), "value": list(env.values())})
    parts += ["<h2>Machine and libraries</h2>", _table(env_table)]
    parts.append("<h2>Settings</h2>")
    if not results:
        parts.append("<p>No runs.</p>")
    else:
        shared, differing = settings_tables(results)
        parts += ["<h3>Shared by every run</h3>", _table(shared)]
        parts += ["<h3>Per run (the settings that differ)</h3>", _table(differing)]
        summary = cmp.variant_summary(results)
        parts += ["<h2>Summary per variant</h2>", _table(cv.summary_display(summary))]
        parts.append(f"<p class='note'>{_esc(cmp.STATS_NOTE)}<br>{_esc(cmp.SPEEDUP_NOTE)}</p>")
        parts += ["<h2>Runs</h2>", _table(runs_table(results))]
        parts.append("<h2>Charts</h2>")
        parts += [_figure(fig) for fig in report_figures(results)]
    for extra in extra_figures:
        heading, fig = extra if isinstance(extra, tuple) else (None, extra)
        parts += ([f"<h2>{_esc(heading)}</h2>"] if heading else []) + [_figure(fig)]
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{_esc(title)}</title>\n<style>{_STYLE}</style>\n"
        f"<script type='text/javascript'>{get_plotlyjs()}</script>\n</head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body>\n</html>\n"
    )


def _figure(fig: go.Figure) -> str:
    div = fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})
    return f"<div class='chart'>{div}</div>"


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, escape=True, na_rep="–", border=0)


def _esc(text: Any) -> str:
    return html.escape(str(text))


def _number(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.4f}"
