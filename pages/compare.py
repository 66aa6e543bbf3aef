"""Compare: one group of runs side by side. A summary table with statistics over seeds (95% CI,
Welch p against lenet, speed-ups), mean ± std curves, every run overlaid as TensorBoard and W&B
draw them (smoothing, log scale, steps / epochs / wall-clock time, one hover for all runs at a
step) and per-variant small multiples, with CSV/HTML downloads and a self-contained report.

The group (newest with a completed run by default), its runs, the overlaid metric and its
settings live in the URL (``bn_core.views.links``): a reload or a shared link shows the same
comparison. While a run of the group trains, a fragment redraws the comparison every 2 s."""

import streamlit as st

from bn_core.analysis import comparison as cmp
from bn_core.views import comparison as cv
from bn_core.views import links
from bn_core.views import overlay as ov
from bn_core.views import runs as live
from bn_core.views.charts import share_y
from bn_core.views.report import build_report
from bn_core.vocabulary import PRE_RUN
from pages._pickers import (
    group_picker,
    rename_group_button,
    run_picker,
    unusable_runs,
    unusable_url,
    view_from_url,
    write_url,
)
from pages._runner import get_store
from pages._ui import TRAIN_PAGE, png_config, store_banner, use_navigation

use_navigation()
PAGE = "compare"
REFRESH_SECONDS = 2.0


@st.cache_data(max_entries=4, show_spinner=False)
def report_html(results: list[dict]) -> str:
    """The report of ``results``, built once per selection: the same bytes on every rerun."""
    return build_report(results, title="BN Lab comparison")


store = get_store()
st.title("Compare")
read_only = store_banner()  # read-only, a full disk, damaged runs: said once

groups = [g for g in store.list_groups() if g.runs > g.queued]  # a run has started in each
if not groups:
    st.info("No runs in the store yet: start some on the Train page.", icon=":material/info:")
    st.page_link(TRAIN_PAGE, label="Go to Train", icon=":material/play_circle:")
    unusable_url(PAGE)
    st.stop()

view = view_from_url(PAGE, {g.id for g in groups})
for name, value in vars(view or links.View()).items():  # a link (a reload): the widgets' state
    key = f"{PAGE}-{name}"
    if name not in ("group", "runs") and (view is not None or key not in st.session_state):
        st.session_state[key] = value
if view is not None and view.group is not None:
    st.session_state[f"{PAGE}-group"] = view.group

picker, rename = st.columns([6, 1], vertical_alignment="bottom")
group = group_picker(
    groups,
    f"{PAGE}-group",
    store.latest_finished_group(),
    help="by default the newest group with a completed run; type to find one by name or date",
    container=picker,
)
with rename:
    rename_group_button(group, f"{PAGE}-rename-{group.id}", read_only)

group_runs = store.list_runs(group_id=group.id)
candidates = [r for r in group_runs if r.status not in PRE_RUN]
runs_key = f"{PAGE}-runs"
unusable_runs(PAGE, view, {r.id for r in candidates})  # deleted, in another group, queued
if view is not None and view.runs:
    st.session_state[runs_key] = [i for i in view.runs if i in {r.id for r in candidates}]
elif st.session_state.get(f"{PAGE}-runs-of") != group.id:  # another group: all of its runs
    st.session_state[runs_key] = [r.id for r in candidates]
st.session_state[f"{PAGE}-runs-of"] = group.id
chosen = run_picker(
    candidates,
    runs_key,
    [r.id for r in candidates],
    help="finished or running runs of the group; by default all of them",
)
settings = st.columns([2, 3, 2, 1], vertical_alignment="bottom")
metric = settings[0].selectbox(
    "Overlaid metric",
    list(ov.OVERLAY_METRICS),
    format_func=ov.OVERLAY_METRICS.get,
    key=f"{PAGE}-metric",
)
smooth = settings[1].slider(
    "Smoothing",
    0.0,
    links.MAX_SMOOTHING,
    step=0.01,
    key=f"{PAGE}-smooth",
    help="exponential moving average, as TensorBoard's (0: the raw points); raw points stay "
    "faint behind the smoothed line",
)
x_axis = settings[2].radio(
    "x axis",
    list(ov.X_AXES),
    horizontal=True,
    key=f"{PAGE}-x",
)
log_y = settings[3].toggle("Log y", key=f"{PAGE}-log", help="a logarithmic y axis (for losses)")
all_ids = [r.id for r in candidates]
shown_ids = tuple(r.id for r in chosen)
write_url(
    PAGE,
    links.View(
        group=group.id,
        runs=() if list(shown_ids) == all_ids else shown_ids,
        metric=metric,
        smooth=round(float(smooth), 2),
        x=x_axis,
        log=bool(log_y),
    ),
)
if not chosen:
    st.info("Select one or more runs (queued runs appear once they start).", icon=":material/info:")
    st.stop()


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


polling = any(r.active for r in chosen)


@st.fragment(run_every=REFRESH_SECONDS if polling else None)
def comparison() -> None:
    """Everything drawn from the chosen runs' metrics: re-read while one of them trains."""
    runs = [r for r in store.list_runs(group_id=group.id) if r.id in set(shown_ids)]
    if polling and not any(r.active for r in runs):
        st.rerun()  # all finished: a full rerun draws the final state without polling
    results = cmp.store_results(store, runs)  # grouped by arm when a setting varies
    curves = cmp.run_curves(results)
    if curves.empty:
        st.info("None of the selected runs has finished an epoch yet.", icon=":material/hourglass:")
        return
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
    csv_left, csv_right, report_col, _ = st.columns([1, 1, 1, 2])
    for column, (name, table) in zip(
        (csv_left, csv_right), {"summary": summary, "curves": curves}.items(), strict=True
    ):
        column.download_button(
            f"{name.capitalize()} CSV",
            table.to_csv(index=False),
            file_name=f"{name}.csv",
            mime="text/csv",
            key=f"download-{name}",
            icon=":material/download:",
        )

    title = ov.OVERLAY_METRICS[metric]
    st.subheader(title)
    st.caption(
        "Left: the mean over seeds with a ±1 standard deviation band where a variant has "
        "several seeds, per epoch. Right: every run overlaid, colour per variant and line style "
        "per seed; one hover reads every run at one x. Training values there are the mean over "
        "each few steps (a batch event), validation values one per epoch. Both share one y "
        "range. The report and the CSV hold every metric."
    )
    seeds = st.toggle("Show individual seeds", key=f"{PAGE}-seeds", help="each seed as a thin line")
    band = cv.band_figure(grouped, metric, curves=curves if seeds else None)
    ids = [r.id for r in runs]
    overlaid = ov.overlay_figure(
        runs,
        live.rows_by_run(store.batch_metrics(ids)),
        live.rows_by_run(store.epoch_metrics(ids)),
        metric,
        x=x_axis,
        smoothing=float(smooth),
        log_y=bool(log_y),
        labels={r.id: live.run_label(r, status=False) for r in runs},
        uirevision=f"{group.id}-{metric}-{x_axis}-{log_y}",
    )
    if log_y:
        band.update_yaxes(type="log")
    share_y([band, overlaid], log=bool(log_y))
    left, right = st.columns(2)
    with left:
        chart(band, metric)
    with right:
        chart(overlaid, f"overlay-{metric}")

    # Off by default: each plotly chart costs the browser ~0.5 s to draw on a 2-core machine
    # (bench/RESULTS.md), and these panels repeat what the overlay shows, split per variant.
    if st.toggle(
        "Per-variant panels",
        key=f"{PAGE}-per-variant",
        help="one small chart per variant: each seed's curve and their mean",
    ):
        chart(cv.small_multiples(curves, metric), f"{metric}_per_variant")

    # Last, once the charts are drawn, into its column at the top. Built here rather than on
    # click: a click on a deferred download (data=callable) names a callable that the server
    # forgets as soon as a rerun ends without re-creating the button (two quick widget changes:
    # the first rerun is cut short), so the button still on screen answered
    # MediaFileStorageError. A file stays served until two reruns in a row leave it out, and
    # the cache keeps its URL the same.
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


comparison()
