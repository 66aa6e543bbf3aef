"""Runs: what trains now, every run in one table, and the curves of what is selected.

Three parts, so that a store of thousands of runs stays quick and an idle page never looks busy:
- **Training now** (a fragment, re-run every second only while a run is queued or running):
  each running run's progress, live loss/accuracy chart and Cancel button.
- **The table**: every run, filtered (search, status, group), sorted and paged by the store in
  SQL (``RunStore.runs_page``), so one page of rows is read, never the whole store.
- **Selected runs**: their curves overlaid (smoothing, log scale, steps / epochs / time, as on
  Compare) and, per run, its status, error and actions (Resume, Cancel, Delete, Rename, Tags).
  With no row selected and a group filter set, the whole group is overlaid.
"""

import streamlit as st

from bn_core.views import links
from bn_core.views import overlay as ov
from bn_core.views import runs as live
from bn_core.views import runs_table as table
from bn_core.vocabulary import PRE_RUN
from pages import _runs_table
from pages._pickers import unusable_runs, unusable_url, view_from_url, write_url
from pages._run_actions import delete_finished_button, last_click
from pages._run_cards import overlay_charts, selected_run, training_now
from pages._runner import get_runner
from pages._ui import TRAIN_PAGE, store_banner, use_navigation

use_navigation()
runner = get_runner()
store = runner.store

st.title("Runs")
# Cancel, Delete, Rename are off while the store cannot be written; runs waiting for a Ray
# cluster that is gone can be sent to this machine from here.
read_only = store_banner(move_key="runs-run-here")
last_click()  # a click's write that failed, or what it did
training_now(runner, read_only)

# ----------------------------------------------------------------------------- the table

groups = store.list_groups()
if not groups:
    st.info("No runs yet: start some on the Train page.", icon=":material/info:")
    st.page_link(TRAIN_PAGE, label="Go to Train", icon=":material/play_circle:")
    unusable_url("runs")
    st.stop()
group_by_id = {g.id: g for g in groups}
# A link (a reload) names a group, selected runs and the curves' settings: they become the
# widgets' state; the runs are selected in the table below (where they are on its page).
view = view_from_url("runs", set(group_by_id), keys=("group", "runs", "smooth", "x", "log"))
for name in ("smooth", "x", "log"):
    if view is not None or f"runs-{name}" not in st.session_state:
        st.session_state[f"runs-{name}"] = getattr(view or links.View(), name)
if view is not None:
    st.session_state["runs-group"] = view.group or ""
    st.session_state["runs-page"] = 1
wanted = set(view.runs) if view is not None else set()

st.subheader("All runs")
query, sort, size = _runs_table.filters(groups)
query, total = _runs_table.count(store, query)
paging = table.paging(total, size, st.session_state.get("runs-page", 1))
if paging.page != st.session_state.get("runs-page", 1):
    st.session_state["runs-page"] = paging.page  # fewer rows than before: the last page
key, descending = table.SORTS[sort]
records, total = store.runs_page(
    **query, sort=key, descending=descending, offset=paging.offset, limit=size
)
steps = store.steps_done([r.id for r in records if r.active])
frame = live.table_frame(records, {g.id: g.name for g in groups}, steps)
table_key = table.table_key(query, sort, paging.page, size)
selected_ids = _runs_table.rows(frame, records, wanted, table_key)
unusable_runs("runs", view, {r.id for r in records})  # gone, or not on the table's page
group_id = query["group_id"]
_runs_table.pager(paging, len(records), group_id)

# ----------------------------------------------------------------------------- selected runs


def remember(smooth: float = links.View().smooth, x: str = "step", log: bool = False) -> None:
    """The URL: the group filter, the selected runs and the curves' settings."""
    shown = links.View(
        group=group_id, runs=tuple(selected_ids), smooth=round(smooth, 2), x=x, log=log
    )
    write_url("runs", shown)


if selected_ids:
    chosen = [r for r in records if r.id in set(selected_ids)]
    what = f"{len(chosen)} selected run(s)"
elif group_id:
    chosen = store.list_runs(group_id=group_id)
    what = f"group {group_by_id[group_id].name}"
else:
    remember()
    st.stop()
started = [r for r in chosen if r.status not in PRE_RUN][: table.MAX_OVERLAID]

st.subheader(f"Curves of {what}")
controls = st.columns([3, 3, 1], vertical_alignment="bottom")
smooth = controls[0].slider(
    "Smoothing",
    0.0,
    links.MAX_SMOOTHING,
    step=0.01,
    key="runs-smooth",
    help="exponential moving average, as TensorBoard's (0: the raw points)",
)
x_axis = controls[1].radio("x axis", list(ov.X_AXES), horizontal=True, key="runs-x")
log_y = controls[2].toggle("Log loss", key="runs-log", help="a logarithmic y axis for the loss")
remember(float(smooth), x_axis, bool(log_y))
if started:
    overlay_charts(store, started, float(smooth), x_axis, bool(log_y))
else:
    st.caption("None of them has started yet.")

if not selected_ids:
    st.stop()
for run in chosen:
    selected_run(runner, run, read_only)
delete_finished_button(store, [r.id for r in chosen if not r.active], read_only)
