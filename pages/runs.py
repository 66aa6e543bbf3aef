"""Runs: the live view. A fragment re-reads the store every second while any run is active
(three queries per refresh: runs, batch metrics, epoch metrics) and stops polling when none is."""

import streamlit as st

from bn_core.config import ConfigError
from bn_core.runs.errors import StoreError
from bn_core.runs.lifecycle import RESUMABLE
from bn_core.runs.store import ACTIVE, RunRecord
from bn_core.views import runs as live
from pages._ui import (
    TRAIN_PAGE,
    get_runner,
    png_config,
    status_badge,
    store_banner,
    use_navigation,
)

use_navigation()

runner = get_runner()
store = runner.store

st.title("Runs")
read_only = store_banner()  # Cancel and Delete are off while the store cannot be written
if failed := st.session_state.pop("runs-store-error", None):  # a click's write that failed
    st.error(failed, icon=":material/error:")
if resumed := st.session_state.pop("runs-resumed", None):
    st.success(resumed, icon=":material/play_arrow:")
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


def act(action, run_id: int) -> None:
    """A Cancel or Delete click: a store that cannot take the write (a full disk) is said
    once above the runs (the callback runs before the page), never raised."""
    try:
        action(run_id)
    except StoreError as exc:
        st.session_state["runs-store-error"] = str(exc)


def resume(run_id: int) -> None:
    """A Resume click: what will happen (from its checkpoint, or over) is said once above
    the runs; a run that cannot be resumed, or a full queue, likewise."""
    try:
        st.session_state["runs-resumed"] = runner.resume(run_id)
    except (ConfigError, StoreError) as exc:
        st.session_state["runs-store-error"] = str(exc)


def render_run(run: RunRecord, batches: list[dict], epochs: list[dict]) -> None:
    with st.container(border=True, key=f"run-{run.id}"):
        head, bar, actions = st.columns([3, 6, 1.5], vertical_alignment="center")
        with head:
            st.markdown(f"**#{run.id} {run.variant}** · seed {run.seed}")
            stuck = live.no_learning_note(run, epochs)
            status_badge(run, no_learning=stuck is not None)
        info = live.progress_info(run, batches, epochs)
        with bar:
            st.progress(info["fraction"], text=info["text"])
            st.caption(live.config_caption(run.config))
        with actions:
            if run.active:
                st.button(
                    "Cancel",
                    key=f"cancel-{run.id}",
                    on_click=act,
                    args=(runner.cancel, run.id),
                    disabled=run.cancel_requested or read_only is not None,
                    help=read_only,
                    icon=":material/stop_circle:",
                )
            else:
                if run.status in RESUMABLE:
                    st.button(
                        "Resume",
                        key=f"resume-{run.id}",
                        on_click=resume,
                        args=(run.id,),
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
                    disabled=read_only is not None,
                    help=read_only,
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
        if stuck:
            st.warning(stuck, icon=":material/warning:")
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
