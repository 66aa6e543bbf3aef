"""What the Runs page draws per run (imported as ``pages._run_cards``): the "Training now"
fragment (live progress and charts, re-run every second only while something is queued or
running), a selected run's card, and the overlay of the selected runs' curves."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from bn_core.runs.execution import JobRunner
from bn_core.runs.store import RunRecord, RunStore
from bn_core.views import overlay as ov
from bn_core.views import runs as live
from bn_core.views import runs_table as table
from bn_core.vocabulary import ACTIVE, RunStatus
from pages._run_actions import cancel_button, cancel_queued_button, run_buttons
from pages._ui import png_config, status_badge


def training_now(runner: JobRunner, read_only: str | None) -> None:
    """The running runs' progress and live charts, and how many wait; nothing when idle.
    A fragment that re-runs every second while a run is active, and not at all after."""
    polling = runner.store.count_runs(ACTIVE) > 0
    st.fragment(_training_now, run_every=1.0 if polling else None)(runner, read_only, polling)


def _training_now(runner: JobRunner, read_only: str | None, polling: bool) -> None:
    store = runner.store
    active = store.list_runs(ACTIVE)
    if polling and not active:
        st.rerun()  # everything finished: a full rerun shows the final table, without polling
    if not active:
        return
    running = [r for r in active if r.status != RunStatus.QUEUED]
    queued = [r for r in active if r.status == RunStatus.QUEUED]
    st.subheader("Training now")
    st.caption(
        f"{len(running)} running, {len(queued)} queued. Charts: training loss/accuracy at each "
        "batch event (line; Keras' running mean over the epoch so far) and per-epoch training "
        "and validation values (markers)."
    )
    ids = [r.id for r in running[: table.MAX_LIVE]]
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
                cancel_button(runner, run, f"cancel-{run.id}", read_only)
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
        left.progress(0.0, text=table.queued_line(queued))
        cancel_queued_button(runner, queued, read_only, right)


def selected_run(runner: JobRunner, run: RunRecord, read_only: str | None) -> None:
    """One selected run: what it is, how it ended, and what can be done with it."""
    with st.container(border=True, key=f"selected-{run.id}"):
        head, info, actions = st.columns([3, 4, 4], vertical_alignment="center")
        with head:
            st.markdown(f"**{live.run_label(run, status=False)}**")
            stuck = live.no_learning_note(run, runner.store.epoch_metrics([run.id]))
            status_badge(run, no_learning=stuck is not None)
        where = live.where_caption(run)
        info.caption(
            live.config_caption(run.config)
            + f" · group {run.group_id}"
            + (f" · {where}" if where else "")
        )
        # One row that wraps, rather than three fixed columns that cut the labels short.
        with actions, st.container(horizontal=True, horizontal_alignment="right"):
            run_buttons(runner, run, read_only)
        ended = table.ended_note(run)
        if ended is not None:
            kind, text = ended
            if kind == "error":
                st.error(text, icon=":material/error:")
            elif kind == "info":
                st.info(text, icon=":material/info:")
            else:
                st.caption(text)
        if stuck:
            st.warning(stuck, icon=":material/warning:")


def overlay_charts(
    store: RunStore, started: Sequence[RunRecord], smooth: float, x_axis: str, log_y: bool
) -> None:
    """The loss and accuracy of ``started`` overlaid, side by side (``views.overlay``)."""
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
            smoothing=smooth,
            log_y=log_y and metric == "loss",
            labels=labels,
            uirevision=f"{metric}-{x_axis}-{log_y}",
        )
        column.plotly_chart(fig, key=f"overlay-{metric}", config=png_config(f"runs-{metric}"))
