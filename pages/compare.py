"""Compare: overlaid curves (mean ± std over seeds, optionally each seed), per-variant small
multiples and a summary table with statistics over seeds (95% CI, Welch p against lenet) and
speed-ups, with CSV/HTML downloads and a self-contained HTML report."""

import streamlit as st

from bn_core.analysis import comparison as cmp
from bn_core.views import comparison as cv
from bn_core.views.charts import METRIC_TITLES
from bn_core.views.report import build_report
from pages._ui import TRAIN_PAGE, get_store, png_config, run_picker, store_banner, use_navigation

use_navigation()


@st.cache_data(max_entries=4, show_spinner=False)
def report_html(results: list[dict]) -> str:
    """The report of ``results``, built once per selection: the same bytes on every rerun."""
    return build_report(results, title="BN Lab comparison")


store = get_store()
st.title("Compare")
store_banner()  # read-only, a full disk, damaged runs: said once

runs = store.list_runs()
if not runs:
    st.info("No runs in the store yet: start some on the Train page.", icon=":material/info:")
    st.page_link(TRAIN_PAGE, label="Go to Train", icon=":material/play_circle:")
    st.stop()

candidates = [r for r in runs if r.status not in ("queued", "starting")]  # finished or running
latest = store.latest_group()
chosen = run_picker(
    candidates,
    "compare-runs",
    [r.id for r in candidates if r.group_id == latest],
    help="finished or running runs; by default every run of the latest group",
)
if not chosen:
    st.info("Select one or more runs (queued runs appear once they start).", icon=":material/info:")
    st.stop()

results = cmp.store_results(store, chosen)  # grouped by arm when a setting varies within a variant
curves = cmp.run_curves(results)
if curves.empty:
    st.info("None of the selected runs has finished an epoch yet.", icon=":material/hourglass:")
    st.stop()
grouped = cmp.group_curves(curves)

st.subheader("Summary per variant")
summary = cmp.variant_summary(results)
differing = cmp.config_differences([r["config"] for r in results], ignore=cmp.BY_DESIGN)
st.caption(
    "Settings that differ between the selected runs: " + ", ".join(differing)
    if differing
    else "All selected runs share the same settings (apart from variant and seed)."
)
# A real HTML table (not the canvas grid): a few rows, readable by screen readers and tests.
st.table(cv.summary_display(summary).set_index("variant"))
st.caption(f"{cmp.STATS_NOTE} {cmp.SPEEDUP_NOTE}")
CSV_DOWNLOADS = {"summary": summary, "curves": curves}
csv_left, csv_right, report_col, _ = st.columns([1, 1, 1, 2])
for column, (name, table) in zip((csv_left, csv_right), CSV_DOWNLOADS.items(), strict=True):
    column.download_button(
        f"{name.capitalize()} CSV",
        table.to_csv(index=False),
        file_name=f"{name}.csv",
        mime="text/csv",
        key=f"download-{name}",
        icon=":material/download:",
    )


def chart(fig, name: str) -> None:
    """A chart, its PNG camera button, and a standalone HTML download built on click."""
    st.plotly_chart(fig, key=f"chart-{name}", config=png_config(name))
    st.download_button(
        "HTML",
        lambda: fig.to_html(include_plotlyjs=True),
        file_name=f"{name}.html",
        mime="text/html",
        key=f"download-{name}",
        on_click="ignore",
        icon=":material/download:",
    )


st.subheader("Curves")
st.caption("Mean over seeds with a ±1 standard deviation band where a variant has several seeds.")
seeds = st.toggle("Show individual seeds", key="compare-seeds", help="each seed as a thin line")
for pair in (cmp.COMPARE_METRICS[:2], cmp.COMPARE_METRICS[2:]):
    for column, metric in zip(st.columns(2), pair, strict=True):
        with column:
            chart(cv.band_figure(grouped, metric, curves=curves if seeds else None), metric)

st.subheader(f"{METRIC_TITLES['val_accuracy']} per variant")
chart(cv.small_multiples(curves, "val_accuracy"), "val_accuracy_per_variant")

# Last, once the charts are drawn, into its column at the top. Built here rather than on click:
# a click on a deferred download (data=callable) names a callable that the server forgets as
# soon as a rerun ends without re-creating the button (two quick widget changes: the first
# rerun is cut short), so the button still on screen answered MediaFileStorageError. A file
# stays served until two reruns in a row leave it out, and the cache keeps its URL the same.
report_col.download_button(
    "Report (HTML)",
    report_html(results),
    file_name="bn-lab-report.html",
    mime="text/html",
    key="download-report",
    on_click="ignore",
    icon=":material/download:",
    help="every table and chart in one file that works offline",
)
