"""Window size: replay a finished run's BN inference statistics over other windows (no
retraining) and compare test accuracy. A replay is a job of the job runner (``JobRunner.replay``):
it waits in the runner's queue with the training runs, under the same limit, and runs as
``python -m bn_core.runs.replays.job RUN_ID`` (TensorFlow loads only there). The page shows each
job's state from the store (``replay_jobs``) and reads the JSON it writes."""

import streamlit as st

from bn_core.runs import replays
from bn_core.runs.store import StoreError
from bn_core.views import replay as rv
from bn_core.views import runs as live
from bn_core.vocabulary import ReplayStatus
from pages._pickers import linked_group_picker, run_picker, unusable_url
from pages._runner import get_runner
from pages._ui import RUNS_PAGE, png_config, quick_start_button, store_banner, use_navigation

use_navigation()

runner = get_runner()
store = runner.store
st.title("Window size")
read_only = store_banner()  # read-only, a full disk, damaged runs: said once; Replay is off
if failed := st.session_state.pop("window-store-error", None):  # a Replay click that failed
    st.error(failed, icon=":material/error:")
st.caption(
    "After training, each of our BN layers holds the statistics of the last epoch's batches. "
    "A replay re-estimates every layer's E[x] and Var[x] from the last W of them (Algorithm 2 "
    "of Ioffe & Szegedy, 2015; *epoch*: all of them) or with Keras' moving average (*EMA*, "
    "momentum 0.99, started at 0/1), and measures the trained model's test accuracy under "
    "each. ★ marks the window the run was trained with; an open marker, a W clipped to the "
    "recorded batches. Each batch's statistics were measured with the weights of its own "
    "training step, so a long window also averages over a network that has since changed."
)


def start(run_ids: list[int]) -> None:
    """A Replay click: a store that cannot take the write (read-only, a full disk) is said
    once at the top of the page (the callback runs before the page), never raised."""
    try:
        runner.replay(run_ids)
    except StoreError as exc:
        st.session_state["window-store-error"] = str(exc)


runs = [r for r in store.list_runs() if not r.active]
if not runs:
    unusable_url("window")
    st.info(
        "No finished runs yet: train a variant with our BN (e.g. lenet_fc_bn2) on the Train page.",
        icon=":material/info:",
    )
    waiting = [r for r in store.list_runs() if r.active]
    if waiting:  # no second click while the first study is on its way
        st.caption(f"{len(waiting)} run(s) queued or running: they appear here when they finish.")
        st.page_link(RUNS_PAGE, label="Watch them on the Runs page", icon=":material/monitoring:")
        st.stop()
    quick_start_button("window", key="window-quick-start")

finished_groups = {r.group_id for r in runs}
group = linked_group_picker(
    "window",
    [g for g in store.list_groups() if g.id in finished_groups],
    runs[-1].group_id,  # the newest finished run's group
    help="groups with finished runs; by default the newest; type to find one by name or date",
)
runs = [r for r in runs if r.group_id == group.id]
problems = {r.id: replays.replay_problem(r, store.model_path(r.id).is_file()) for r in runs}
labels = {r.id: live.run_label(r) for r in runs}
if st.session_state.get("window-runs-of") != group.id:  # another group: its replayable runs
    st.session_state.pop("window-runs", None)
    st.session_state["window-runs-of"] = group.id
chosen = run_picker(
    runs,
    "window-runs",
    [r.id for r in runs if problems[r.id] is None],
    help="the group's finished runs; by default the replayable ones",
)
if not chosen:
    st.info("Select one or more finished runs.", icon=":material/info:")
    st.stop()

jobs = store.replay_jobs([r.id for r in chosen])
pending = (ReplayStatus.QUEUED, ReplayStatus.RUNNING)
waiting = {i: job for i, job in jobs.items() if job.status in pending}
payloads, to_replay = [], []
for run in chosen:
    if problems[run.id]:
        st.warning(problems[run.id], icon=":material/block:")
        continue
    try:
        payload = replays.load_replay(replays.replay_path(store.home, run.id), run.id)
    except replays.ReplayFileError as exc:
        st.error(str(exc), icon=":material/error:")
        payload = None
    if payload is not None:
        payloads.append(payload)
    elif run.id not in waiting:  # never asked for, failed, or its file was removed
        job = jobs.get(run.id)
        if job is not None and job.status == ReplayStatus.FAILED:
            st.error(f"Replay of run #{run.id} failed: {job.error}", icon=":material/error:")
        to_replay.append(run.id)

if to_replay:
    columns = st.columns(min(len(to_replay) + (len(to_replay) > 1), 6))
    for column, run_id in zip(columns, to_replay, strict=False):
        column.button(
            f"Replay #{run_id}",
            key=f"window-replay-{run_id}",
            on_click=start,
            args=([run_id],),
            icon=":material/replay:",
            disabled=read_only is not None,
            help=read_only,
        )
    if len(to_replay) > 1:
        columns[-1].button(
            "Replay all",
            key="window-replay-all",
            on_click=start,
            args=(to_replay,),
            icon=":material/replay:",
            type="primary",
            disabled=read_only is not None,
            help=read_only,
        )


@st.fragment(run_every=1.0 if waiting else None)
def wait_for_replays() -> None:
    """Once a second while a replay waits or runs: its place in the queue, or its stage and
    progress bar; a full rerun when one starts or ends shows the result (or its error)."""
    now = store.replay_jobs(list(waiting))
    if any(i not in now or now[i].status != job.status for i, job in waiting.items()):
        st.rerun()
    for run_id, job in now.items():
        if job.status == ReplayStatus.QUEUED:
            place = "next in line" if not job.ahead else f"{job.ahead} job(s) ahead of it"
            st.info(f"Replay of {labels[run_id]} queued: {place}", icon=":material/schedule:")
            continue
        path = replays.replay_progress_path(store.home, run_id)
        fraction, stage = replays.read_progress(path) or (0.0, "starting Python")
        st.progress(fraction, text=f"Replay of #{run_id}: {stage}")


wait_for_replays()
if not payloads:
    st.stop()

frame = rv.replay_frame(payloads, labels)
st.plotly_chart(rv.replay_figure(frame), key="window-chart", config=png_config("window-replay"))
st.table(rv.accuracy_table(frame))
for payload in payloads:
    trained = payload.get("trained_test_accuracy")
    st.caption(
        f"#{payload['run_id']}: trained with W = {payload['trained_window']}"
        + (f" (test accuracy {trained:.4f} when trained)" if trained is not None else "")
        + f"; {payload['recorded_batches']} recorded batches; the EMA's 0/1 start still weighs "
        f"{payload['ema_momentum']}^{payload['recorded_batches']} = "
        f"{payload['ema_start_weight']:.2g}."
    )
st.download_button(
    "Replay CSV",
    frame.to_csv(index=False),
    file_name="window-replay.csv",
    mime="text/csv",
    key="window-download",
    icon=":material/download:",
)
