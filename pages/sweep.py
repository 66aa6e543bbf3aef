"""Sweep: final test accuracy against the learning rate (multiples of the optimizer's default,
the paper's BN-x5/BN-x30) and/or the batch size, per variant. Start queues the grid through the
job runner; the chart reads any group of runs in the store that forms a sweep."""

import streamlit as st

from bn_core.analysis import comparison as cmp
from bn_core.analysis import study
from bn_core.config import ConfigError, TrainConfig, field_spec
from bn_core.variants import VARIANT_NAMES
from bn_core.views import runs as live
from bn_core.views import train_form
from bn_core.views.sweep import sweep_figure
from bn_core.views.train_form import seed_list
from pages._ui import RUNS_PAGE, get_runner, get_store, png_config, use_navigation

use_navigation()
KINDS = ("learning rate", "batch size", "both")

st.title("Sweep")
st.caption(
    "How robust is each variant to a larger learning rate or a smaller batch? Every other "
    "setting is TrainConfig's default; diverged runs are kept and marked, never drawn as zero."
)
left, right = st.columns(2, gap="large")
with left:
    variants = st.multiselect(
        "Variants", VARIANT_NAMES, default=list(study.ROBUSTNESS_VARIANTS), key="sweep-variants"
    )
    kind = st.radio("Sweep over", KINDS, horizontal=True, key="sweep-kind")
    multipliers, batch_sizes = [1], []
    if kind != "batch size":
        multipliers = st.multiselect(
            "Learning-rate multipliers (× the optimizer's default)",
            study.LR_MULTIPLIER_CHOICES,
            default=list(study.LR_MULTIPLIERS),
            format_func=lambda m: f"×{m:g}",
            key="sweep-lr",
        )
    if kind != "learning rate":
        batch_sizes = st.multiselect(
            "Batch sizes",
            train_form.batch_size_choices(),
            key="sweep-batch",
            default=list(study.BATCH_SIZES),
        )
with right:
    spec = field_spec("dataset")
    dataset = st.selectbox("Dataset", spec["choices"], key="sweep-dataset")
    spec = field_spec("epochs")
    epochs = st.slider("Epochs", spec["min"], spec["max"], spec["default"], key="sweep-epochs")
    repeats = st.number_input(
        "Seeds per point",
        1,
        train_form.MAX_REPEATS,
        1,
        key="sweep-seeds",
        help="seeds 0, 1, ...: mean ± std over them",
    )
    quick = st.checkbox(
        f"Quick mode ({train_form.QUICK_TRAIN_LIMIT:,} training images)", key="sweep-quick"
    )

base = TrainConfig(
    dataset=dataset, epochs=epochs, train_limit=train_form.QUICK_TRAIN_LIMIT if quick else None
)
try:
    configs = study.sweep_configs(base, variants, multipliers, batch_sizes, seed_list(0, repeats))
    error = None
except ConfigError as e:
    configs, error = [], str(e)
points = len(multipliers) * max(len(batch_sizes), 1)
st.write(
    f"**{len(configs)} runs**: {len(variants)} variant(s) × {points} point(s) × {repeats} "
    f"seed(s), {epochs} epoch(s) each."
)
if error:
    st.warning(error, icon=":material/warning:")
if st.button("Start", type="primary", icon=":material/play_arrow:", key="sweep-start"):
    if error:
        st.error(error, icon=":material/error:")
    else:
        ids = get_runner().submit(configs, group_id=study.sweep_group_id())
        st.success(f"Queued {len(ids)} run(s): #{ids[0]}–#{ids[-1]}.", icon=":material/check:")
        st.page_link(RUNS_PAGE, label="Watch them on the Runs page", icon=":material/monitoring:")

st.subheader("Results")
store = get_store()
groups = [(g, runs) for g, runs in live.group_runs(store.list_runs()) if study.is_sweep(runs)]
if not groups:
    st.info("No sweep in the store yet: start one above.", icon=":material/info:")
    st.stop()
labels = {g: f"{g} ({len(runs)} runs)" for g, runs in groups}
group = st.selectbox("Sweep", list(labels), format_func=labels.get, key="sweep-group")
table = study.sweep_table(cmp.store_results(store, dict(groups)[group]))
st.plotly_chart(sweep_figure(table), key="sweep-chart", config=png_config("sweep"))
st.caption("Per point: runs, completed (in the mean), diverged and other (running, failed, ...).")
points = study.sweep_points(table).round(4).astype(object)
st.table(points.where(points.notna(), "–").set_index("variant"))
