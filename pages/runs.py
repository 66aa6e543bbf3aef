"""Runs: the live view. A fragment re-reads the store every second while any run is active
(three queries per refresh: runs, batch metrics, epoch metrics) and stops polling when none is."""

import streamlit as st

from bn_core.runs.store import ACTIVE, RunRecord
from bn_core.views import runs as live
from pages._ui import TRAIN_PAGE, get_runner, png_config, status_badge, use_navigation

use_navigation()

runner = get_runner()
store = runner.store

st.title("Runs")
top_left, top_right = st.columns([3, 1], vertical_alignment="bottom")
with top_left:
    st.caption(
        "Newest group first. Charts: training loss/accuracy at each batch event (line, x = "
        "epochs done; Keras' running mean over the epoch so far, so it restarts at each epoch) "
        "and per-epoch training and validation values (markers)."
    )
with top_right:
    groups_shown = st.number_input(
        "Groups shown", min_value=1, max_value=100, value=5, step=1, key="runs-groups"
    )
polling = bool(store.list_runs(ACTIVE))


def render_run(run: RunRecord, batches: list[dict], epochs: list[dict]) -> None:
    with st.container(border=True, key=f"run-{run.id}"):
        head, bar, actions = st.columns([3, 6, 1.5], vertical_alignment="center")
        with head:
            st.markdown(f"**#{run.id} {run.variant}** · seed {run.seed}")
            status_badge(run)
        info = live.progress_info(run, batches, epochs)
        with bar:
            st.progress(info["fraction"], text=info["text"])
            st.caption(live.config_caption(run.config))
        with actions:
            if run.active:
                st.button(
                    "Cancel",
                    key=f"cancel-{run.id}",
                    on_click=runner.cancel,
                    args=(run.id,),
                    disabled=run.cancel_requested,
                    icon=":material/stop_circle:",
                )
            else:
                st.button(
                    "Delete",
                    key=f"delete-{run.id}",
                    on_click=store.delete,
                    args=(run.id,),
                    icon=":material/delete:",
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
        if batches or epochs:
            left, right = st.columns(2)
            for column, metric in ((left, "loss"), (right, "accuracy")):
                fig = live.live_figure(batches, epochs, metric, uirevision=run.id)
                column.plotly_chart(
                    fig,
                    key=f"{metric}-{run.id}",
                    config=png_config(f"run{run.id}-{run.variant}-{metric}"),
                )


@st.fragment(run_every=1.0 if polling else None)
def live_view() -> None:
    runs = store.list_runs()
    if polling and not any(r.active for r in runs):
        st.rerun()  # everything finished: a full rerun re-creates this fragment without polling
    if not runs:
        st.info("No runs yet: start some on the Train page.", icon=":material/info:")
        st.page_link(TRAIN_PAGE, label="Go to Train", icon=":material/play_circle:")
        return
    groups = live.group_runs(runs)[: int(groups_shown)]
    ids = [r.id for _, group in groups for r in group]
    batches = live.rows_by_run(store.batch_metrics(ids))
    epochs = live.rows_by_run(store.epoch_metrics(ids))
    for group_id, group in groups:
        active = sum(r.active for r in group)
        st.subheader(f"Group {group_id}")
        st.caption(f"{len(group)} run(s), {active} active")
        for run in group:
            render_run(run, batches.get(run.id, []), epochs.get(run.id, []))
    hidden = len(runs) - len(ids)
    if hidden:
        st.caption(f"{hidden} older run(s) not shown: raise 'Groups shown'.")


live_view()
if not polling:
    st.button("Refresh", key="runs-refresh", icon=":material/refresh:")
