"""Sweep: final test accuracy against the learning rate (multiples of the optimizer's default,
the paper's BN-x5/BN-x30) and/or the batch size, per variant. Start queues the grid through the
job runner; the chart reads any group of runs in the store that forms a sweep.

Dataset, epochs and quick mode are one choice with the Train form (``SHARED_FIELDS``): the
page starts from the Train form's last choice and hands a change back; its own widgets keep
their values for the whole session. An empty store offers the quick "lr" preset."""

import streamlit as st

from bn_core.analysis import comparison as cmp
from bn_core.analysis import study
from bn_core.config import ConfigError, TrainConfig, field_spec
from bn_core.runs.execution import caps
from bn_core.runs.store import StoreError
from bn_core.variants import VARIANT_NAMES
from bn_core.views import datasets, train_form
from bn_core.views import runs as live
from bn_core.views.sweep import sweep_figure
from bn_core.views.train_form import seed_list
from bn_core.vocabulary import RunStatus
from pages._cluster_ui import backend_choice
from pages._pickers import linked_group_picker, unusable_url
from pages._runner import get_runner, get_store
from pages._ui import (
    RUNS_PAGE,
    TRAIN_PAGE,
    png_config,
    quick_start_button,
    store_banner,
    use_navigation,
)

use_navigation()
for key, value in train_form.sweep_form_state(st.session_state).items():
    if key.removeprefix("sweep-") in train_form.SHARED_FIELDS or key not in st.session_state:
        st.session_state[key] = value
KEEP = {"persist_state": "session"}  # the value survives visits to other pages


def share(name: str) -> None:
    """Hand a shared choice back to the Train form."""
    st.session_state[f"train-{name}"] = st.session_state[f"sweep-{name}"]


st.title("Sweep")
st.caption(
    "How robust is each variant to a larger learning rate or a smaller batch? Dataset, epochs "
    "and quick mode are the Train form's (a change here changes them there); every other "
    "setting is TrainConfig's default. Diverged runs are kept and marked, never drawn as zero."
)
read_only = store_banner()  # why nothing can start (the store cannot be written), or None
left, right = st.columns(2, gap="large")
with left:
    variants = st.multiselect("Variants", VARIANT_NAMES, key="sweep-variants", **KEEP)
    kind = st.radio("Sweep over", train_form.SWEEP_KINDS, horizontal=True, key="sweep-kind", **KEEP)
    multipliers, batch_sizes = [1], []
    if kind != "batch size":
        multipliers = st.multiselect(
            "Learning-rate multipliers (× the optimizer's default)",
            study.LR_MULTIPLIER_CHOICES,
            format_func=lambda m: f"×{m:g}",
            key="sweep-lr",
            **KEEP,
        )
    if kind != "learning rate":
        batch_sizes = st.multiselect(
            "Batch sizes", train_form.batch_size_choices(), key="sweep-batch", **KEEP
        )
with right:
    dataset = st.selectbox(
        "Dataset",
        field_spec("dataset")["choices"],
        help=datasets.availability_help(st.session_state.get("train-data-dir")),
        key="sweep-dataset",
        on_change=share,
        args=("dataset",),
    )
    folder, data_problems = train_form.data_errors(dataset, st.session_state.get("train-data-dir"))
    if data_problems:  # the warning below says why
        st.page_link(TRAIN_PAGE, label="Get the data on the Train page", icon=":material/download:")
    epochs = st.select_slider(
        "Epochs",
        train_form.step_choices("epochs", st.session_state["sweep-epochs"]),
        key="sweep-epochs",
        on_change=share,
        args=("epochs",),
        help=field_spec("epochs")["help"],
    )
    repeats = st.number_input(
        "Seeds per point",
        1,
        train_form.MAX_REPEATS,
        key="sweep-seeds",
        help="seeds 0, 1, ...: mean ± std over them",
        **KEEP,
    )
    limit = st.session_state.get("train-train-limit", train_form.QUICK_TRAIN_LIMIT)
    quick = st.checkbox(
        f"Quick mode ({limit:,} training images, as on the Train form)",
        key="sweep-quick",
        on_change=share,
        args=("quick",),
    )

base = TrainConfig(
    dataset=dataset, epochs=epochs, train_limit=limit if quick else None, data_dir=folder
)
try:
    configs = study.sweep_configs(base, variants, multipliers, batch_sizes, seed_list(0, repeats))
    error = "; ".join(data_problems) or None
except ConfigError as e:
    configs, error = [], "; ".join([str(e), *data_problems])
points = len(multipliers) * max(len(batch_sizes), 1)
queued_now = get_store().count_runs((RunStatus.QUEUED,))
st.write(
    f"**{len(configs)} runs**: {len(variants)} variant(s) × {points} point(s) × {repeats} "
    f"seed(s), {epochs} epoch(s) each."
)
st.caption(caps.submit_note(len(configs), queued_now))
if error:
    st.warning(error, icon=":material/warning:")
if cap_problem := caps.submit_problem(len(configs), queued_now):  # the button is off
    st.error(cap_problem, icon=":material/error:")
backend = backend_choice("sweep-backend")  # "local" unless a Ray cluster answers
start = st.button(
    "Start",
    type="primary",
    icon=":material/play_arrow:",
    key="sweep-start",
    disabled=cap_problem is not None or read_only is not None,
    help=read_only,
)
if start and error:
    st.error(error, icon=":material/error:")
elif start and cap_problem is None and read_only is None:
    try:
        ids = get_runner().submit(configs, group_id=study.sweep_group_id(), backend=backend)
    except (ConfigError, StoreError) as e:  # the queue filled up, or the disk, since drawn
        st.error(str(e), icon=":material/error:")
    else:
        st.success(f"Queued {len(ids)} run(s): #{ids[0]}–#{ids[-1]}.", icon=":material/check:")
        st.page_link(RUNS_PAGE, label="Watch them on the Runs page", icon=":material/monitoring:")

st.subheader("Results")
store = get_store()
groups = [(g, runs) for g, runs in live.group_runs(store.list_runs()) if study.is_sweep(runs)]
if not groups:
    unusable_url("sweep")
    st.info(
        "No sweep in the store yet: start one above, or the quick one below.",
        icon=":material/info:",
    )
    quick_start_button(
        "lr", key="sweep-quick-start", group_id=study.sweep_group_id(), backend=backend
    )
    st.stop()
sweeps = dict(groups)
records = {g.id: g for g in store.list_groups() if g.id in sweeps}
finished = [g for g, runs in groups if any(r.status == RunStatus.COMPLETED for r in runs)]
group = linked_group_picker(
    "sweep",
    [records[g] for g, _ in groups if g in records],
    finished[0] if finished else None,
    help="groups of runs that form a sweep; by default the newest with a completed run",
)
polling = any(r.active for r in sweeps[group.id])


@st.fragment(run_every=2.0 if polling else None)
def sweep_results() -> None:
    """The chosen sweep's chart and table, re-read every 2 s while one of its runs trains."""
    runs = store.list_runs(group_id=group.id)
    if polling and not any(r.active for r in runs):
        st.rerun()  # all finished: a full rerun draws the final state without polling
    table = study.sweep_table(cmp.store_results(store, runs))
    st.plotly_chart(sweep_figure(table), key="sweep-chart", config=png_config("sweep"))
    st.caption(
        "Per point: runs, completed (in the mean), diverged, other (running, failed, ...) and "
        "no learning (ended at chance accuracy; ○ on the chart, in the mean when completed)."
    )
    points = study.sweep_points(table).round(4).astype(object)
    st.table(points.where(points.notna(), "–").set_index("variant"))


sweep_results()
