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

from bn_core.config import ConfigError
from bn_core.runs.store import ACTIVE, RESUMABLE, STATUSES, RunRecord, StoreError
from bn_core.views import links
from bn_core.views import overlay as ov
from bn_core.views import runs as live
from pages._ui import (
    COMPARE_PAGE,
    TRAIN_PAGE,
    get_runner,
    keep_choice,
    png_config,
    status_badge,
    store_banner,
    use_navigation,
    view_from_url,
    write_url,
)

use_navigation()
MAX_LIVE = 4  # running runs drawn with their own live charts (the rest: a progress line)
MAX_OVERLAID = 60  # runs in one overlay chart (a group of a large sweep fits)
PAGE_SIZES = (25, 50, 100, 200)
# What the sort box offers: (store sort, descending) per label.
SORTS = {
    "newest first": ("id", True),
    "oldest first": ("id", False),
    "best test accuracy": ("accuracy", True),
    "name": ("name", False),
    "group": ("group", False),
    "variant": ("variant", False),
    "status": ("status", False),
    "node": ("node", False),
}

runner = get_runner()
store = runner.store

st.title("Runs")
# Cancel, Delete, Rename are off while the store cannot be written; runs waiting for a Ray
# cluster that is gone can be sent to this machine from here.
read_only = store_banner(move_key="runs-run-here")
if failed := st.session_state.pop("runs-store-error", None):  # a click's write that failed
    st.error(failed, icon=":material/error:")
if said := st.session_state.pop("runs-said", None):
    st.success(said, icon=":material/check:")


def act(action, *args, done: str | None = None) -> None:
    """A click's write (cancel, delete, resume, rename, tag): one that fails (a full disk, a
    bad name, a full queue) is said once at the top (the callback runs before the page)."""
    try:
        result = action(*args)
    except (StoreError, ConfigError, ValueError) as exc:
        st.session_state["runs-store-error"] = str(exc)
        return
    message = result if isinstance(result, str) and done is None else done
    if message:
        st.session_state["runs-said"] = message


def cancel_button(run: RunRecord, key: str) -> None:
    st.button(
        "Cancel",
        key=key,
        on_click=act,
        args=(runner.cancel, run.id),
        disabled=run.cancel_requested or read_only is not None,
        help=read_only,
        icon=":material/stop_circle:",
    )


# ----------------------------------------------------------------------------- training now

polling = store.count_runs(ACTIVE) > 0


@st.fragment(run_every=1.0 if polling else None)
def training_now() -> None:
    """The running runs' progress and live charts, and how many wait; nothing when idle."""
    active = store.list_runs(ACTIVE)
    if polling and not active:
        st.rerun()  # everything finished: a full rerun shows the final table, without polling
    if not active:
        return
    running = [r for r in active if r.status != "queued"]
    queued = [r for r in active if r.status == "queued"]
    st.subheader("Training now")
    st.caption(
        f"{len(running)} running, {len(queued)} queued. Charts: training loss/accuracy at each "
        "batch event (line; Keras' running mean over the epoch so far) and per-epoch training "
        "and validation values (markers)."
    )
    drawn = running[:MAX_LIVE]
    ids = [r.id for r in drawn]
    batches = live.rows_by_run(store.batch_metrics(ids)) if ids else {}
    epochs = live.rows_by_run(store.epoch_metrics(ids)) if ids else {}
    for run in running:
        with st.container(border=True, key=f"run-{run.id}"):
            head, bar, actions = st.columns([3, 6, 1.5], vertical_alignment="center")
            with head:
                st.markdown(f"**{live.run_label(run, status=False)}**")
                status_badge(run)
            info = live.progress_info(run, batches.get(run.id, []), epochs.get(run.id, []))
            bar.progress(info["fraction"], text=info["text"])
            bar.caption(live.config_caption(run.config))
            with actions:
                cancel_button(run, f"cancel-{run.id}")
            if run.id in batches or run.id in epochs:
                left, right = st.columns(2)
                for column, metric in ((left, "loss"), (right, "accuracy")):
                    fig = live.live_figure(
                        batches.get(run.id, []), epochs.get(run.id, []), metric, uirevision=run.id
                    )
                    column.plotly_chart(
                        fig,
                        key=f"{metric}-{run.id}",
                        config=png_config(f"run{run.id}-{run.variant}-{metric}"),
                    )
    if queued:
        left, right = st.columns([5, 1], vertical_alignment="center")
        shown = ", ".join(f"#{r.id}" for r in queued[:12]) + (" …" if len(queued) > 12 else "")
        left.progress(0.0, text=f"queued: {shown}")
        right.button(
            f"Cancel {len(queued)} queued",
            key="cancel-queued",
            on_click=act,
            args=(lambda: [runner.cancel(r.id) for r in queued],),
            kwargs={"done": f"Cancelled {len(queued)} queued run(s)."},
            disabled=read_only is not None,
            help=read_only,
            icon=":material/cancel_schedule_send:",
        )


training_now()

# ----------------------------------------------------------------------------- the table

groups = store.list_groups()
if not groups:
    st.info("No runs yet: start some on the Train page.", icon=":material/info:")
    st.page_link(TRAIN_PAGE, label="Go to Train", icon=":material/play_circle:")
    st.stop()
group_by_id = {g.id: g for g in groups}
# A link (a reload) names a group, selected runs and the curves' settings: they become the
# widgets' state; the runs are selected in the table below (where they are on its page).
view = view_from_url("runs", set(group_by_id))
for name in ("smooth", "x", "log"):
    if view is not None or f"runs-{name}" not in st.session_state:
        st.session_state[f"runs-{name}"] = getattr(view or links.View(), name)
if view is not None:
    st.session_state["runs-group"] = view.group or ""
    st.session_state["runs-page"] = 1
wanted = set(view.runs) if view is not None else set()
st.subheader("All runs")
search_col, status_col, group_col, sort_col, size_col = st.columns(
    [3, 2, 3, 2, 1], vertical_alignment="bottom"
)
search = search_col.text_input(
    "Search",
    key="runs-search",
    placeholder="#12, a name, variant, tag, node…",
    help="'#12' (or 12) finds run 12 only; words find runs whose name, variant, group, tags "
    "or node contain every one of them",
)
statuses = status_col.multiselect("Status", STATUSES, key="runs-status", placeholder="any")
keep_choice("runs-group", {"": "all groups", **{g.id: g.label for g in groups}}, "")
group_id = group_col.selectbox(
    "Group",
    ["", *group_by_id],
    format_func=lambda g: group_by_id[g].label if g else "all groups",
    key="runs-group",
    help="type to find a group by name or date",
)
sort = sort_col.selectbox("Sort", list(SORTS), key="runs-sort")
size = size_col.selectbox("Rows", PAGE_SIZES, index=1, key="runs-size")
query = {
    "search": search.strip() or None,
    "statuses": tuple(statuses) or None,
    "group_id": group_id or None,
}
try:
    _, total = store.runs_page(**query, limit=1)
except ValueError as exc:  # a search the store cannot take: say so, show everything
    st.error(str(exc), icon=":material/error:")
    query["search"] = None
    _, total = store.runs_page(**query, limit=1)
pages = max(1, -(-total // size))
if st.session_state.get("runs-page", 1) > pages:
    st.session_state["runs-page"] = pages  # fewer rows than before: the last page
key, descending = SORTS[sort]
page_no = int(st.session_state.get("runs-page", 1))
records, total = store.runs_page(
    **query, sort=key, descending=descending, offset=(page_no - 1) * size, limit=size
)
steps = store.steps_done([r.id for r in records if r.active])
frame = live.table_frame(records, {g.id: g.name for g in groups}, steps)
# A new query (filter, sort, page) is a new table: its selection starts empty rather than
# pointing at the rows that happen to sit where the old ones were.
table_key = "runs-table-" + str(abs(hash((tuple(query.items()), sort, page_no, size))))
event = st.dataframe(
    frame,
    key=table_key,
    selection_default={"selection": {"rows": [i for i, r in enumerate(records) if r.id in wanted]}}
    if wanted
    else None,
    on_select="rerun",
    selection_mode="multi-row",
    hide_index=True,
    column_config={
        "run": st.column_config.NumberColumn("run", format="#%d", width="small"),
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0),
        "test accuracy": st.column_config.NumberColumn("test accuracy", format="%.4f"),
        "img/s": st.column_config.NumberColumn(
            "img/s", format="%.0f", help="training images per second, recorded at the run's end"
        ),
        "seed": st.column_config.NumberColumn("seed", width="small"),
        "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
    },
)
first = (page_no - 1) * size + 1 if total else 0
pager, counts, compare_link = st.columns([1, 3, 2], vertical_alignment="center")
pager.number_input("Page", 1, pages, key="runs-page", label_visibility="collapsed")
counts.caption(
    f"Runs {first:,}–{first + len(records) - 1:,} of {total:,} · page {page_no} of {pages:,}. "
    "Select rows to see their curves and actions."
)
if group_id:
    compare_link.page_link(
        COMPARE_PAGE,
        label="Compare this group",
        icon=":material/compare_arrows:",
        query_params={"group": group_id},
    )

# ----------------------------------------------------------------------------- selected runs

selected_ids = [int(frame.iloc[i]["run"]) for i in event.selection.rows if i < len(frame)]


def remember(smooth: float = links.View().smooth, x: str = "step", log: bool = False) -> None:
    """The URL: the group filter, the selected runs and the curves' settings."""
    runs = tuple(selected_ids)
    shown = links.View(group=group_id or None, runs=runs, smooth=round(smooth, 2), x=x, log=log)
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
started = [r for r in chosen if r.status not in ("queued", "starting")][:MAX_OVERLAID]

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
    ids = [r.id for r in started]
    batches = live.rows_by_run(store.batch_metrics(ids))
    epochs = live.rows_by_run(store.epoch_metrics(ids))
    labels = {r.id: live.run_label(r, status=False) for r in started}
    for column, metric in zip(st.columns(2), ("loss", "accuracy"), strict=True):
        fig = ov.overlay_figure(
            started,
            batches,
            epochs,
            metric,
            x=x_axis,
            smoothing=float(smooth),
            log_y=bool(log_y) and metric == "loss",
            labels=labels,
            uirevision=f"{metric}-{x_axis}-{log_y}",
        )
        column.plotly_chart(fig, key=f"overlay-{metric}", config=png_config(f"runs-{metric}"))
else:
    st.caption("None of them has started yet.")

if not selected_ids:
    st.stop()


def render_selected(run: RunRecord) -> None:
    """One selected run: what it is, how it ended, and what can be done with it."""
    with st.container(border=True, key=f"selected-{run.id}"):
        head, info, actions = st.columns([3, 4, 4], vertical_alignment="center")
        with head:
            st.markdown(f"**{live.run_label(run, status=False)}**")
            stuck = live.no_learning_note(run, store.epoch_metrics([run.id]))
            status_badge(run, no_learning=stuck is not None)
        where = live.where_caption(run)
        info.caption(
            live.config_caption(run.config)
            + f" · group {run.group_id}"
            + (f" · {where}" if where else "")
        )
        # One row that wraps, rather than three fixed columns that cut the labels short.
        with actions, st.container(horizontal=True, horizontal_alignment="right"):
            if run.active:
                cancel_button(run, f"cancel-selected-{run.id}")
            else:
                if run.status in RESUMABLE:
                    st.button(
                        "Resume",
                        key=f"resume-{run.id}",
                        on_click=act,
                        args=(runner.resume, run.id),
                        disabled=read_only is not None,
                        help=read_only
                        or "Continue from its last completed epoch (its checkpoint), in this "
                        "same run; without a checkpoint it starts over.",
                        icon=":material/play_arrow:",
                    )
                st.button(
                    "Delete",
                    key=f"delete-{run.id}",
                    on_click=act,
                    args=(store.delete, run.id),
                    kwargs={"done": f"Deleted run #{run.id}."},
                    disabled=read_only is not None,
                    help=read_only,
                    icon=":material/delete:",
                )
            with st.popover(
                "Name", icon=":material/edit:", disabled=read_only is not None, help=read_only
            ):
                st.text_input("Name", value=run.name or "", key=f"name-{run.id}")
                tags = ", ".join(run.tag_list)
                st.text_input("Tags", value=tags, key=f"tags-{run.id}", help="comma-separated")
                st.button(
                    "Save",
                    key=f"save-{run.id}",
                    type="primary",
                    on_click=act,
                    args=(save_names, run.id),
                    kwargs={"done": f"Saved run #{run.id}'s name and tags."},
                )
        if run.status in live.ERROR_STATUSES:
            st.error(
                f"Run {run.status}: {run.error or 'no message recorded'}", icon=":material/error:"
            )
        elif run.status == "cancelled":
            note = run.error or "cancelled"
            st.info(f"{note[0].upper()}{note[1:]}.", icon=":material/info:")
        elif run.status == "completed" and run.test_accuracy is not None:
            st.caption(f"Test accuracy **{run.test_accuracy:.4f}** · test loss {run.test_loss:.4f}")
        if stuck:
            st.warning(stuck, icon=":material/warning:")


def save_names(run_id: int) -> None:
    """The Name popover's Save: both fields, read from their widgets (the callback runs first)."""
    store.rename_run(run_id, st.session_state.get(f"name-{run_id}") or None)
    text = st.session_state.get(f"tags-{run_id}") or ""
    store.set_tags(run_id, [t for t in (p.strip() for p in text.split(",")) if t])


for run in chosen:
    render_selected(run)
finished = [r.id for r in chosen if not r.active]
if len(finished) > 1:
    st.button(
        f"Delete the {len(finished)} finished selected runs",
        key="delete-selected",
        on_click=act,
        args=(store.delete_runs, finished),
        kwargs={"done": f"Deleted {len(finished)} runs."},
        disabled=read_only is not None,
        help=read_only,
        icon=":material/delete_sweep:",
    )
