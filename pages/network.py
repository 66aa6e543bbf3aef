"""Inside the network: Ioffe & Szegedy (2015), Figure 1, for runs trained with probes.

Per BN site, the 15th/50th/85th percentiles of the activation's input over training (without
BN at that site beside with BN), the probe-batch accuracy, each layer's gradient norm and the
inference-vs-batch-statistics validation gap. Four store queries per refresh; a fragment
re-reads them every second while a selected run is active."""

import streamlit as st

from bn_core import constants
from bn_core.variants import SITES
from bn_core.views import probes as pv
from bn_core.views import runs as live
from bn_core.views.charts import share_y
from bn_core.vocabulary import ACTIVE
from pages._pickers import linked_group_picker, run_picker, unusable_url
from pages._runner import get_store
from pages._ui import TRAIN_PAGE, png_config, quick_start_button, store_banner, use_navigation

use_navigation()

store = get_store()
st.title("Inside the network")
store_banner()  # read-only, a full disk, damaged runs: said once
st.caption(
    "What the paper's Figure 1 shows: without BN the distribution of a sigmoid's input drifts "
    "while the network trains (internal covariate shift); with BN it stays put. Probes are "
    f"taken every *k* steps (`probe_every`; {constants.PROBE_EVERY_DEFAULT} keeps their cost "
    f"under 5%) on a fixed batch of {constants.PROBE_SIZE} validation images (the conv sites' "
    f"percentiles on its first {constants.CONV_PROBE_SIZE}), in inference mode; gradient norms "
    "on its first *m* images "
    "with batch statistics, as a training step sees them."
)

probed = store.probed_run_ids()
runs = [r for r in store.list_runs() if r.id in probed]
if not runs:
    unusable_url("network")
    waiting = [r for r in store.list_runs(ACTIVE) if r.config.probe_every > 0]
    if waiting:  # probes are on their way: poll until the first arrive, then show them

        @st.fragment(run_every=1.0)
        def wait_for_probes() -> None:
            if store.probed_run_ids():
                st.rerun()
            st.info(f"Waiting for the first probes of {len(waiting)} queued or running run(s).")

        wait_for_probes()
    else:
        st.info(
            "No run has probes yet: queue the paper's Figure 1 study in one click below, or "
            "start runs on the Train page with probes on (probe_every > 0).",
            icon=":material/info:",
        )
        st.page_link(TRAIN_PAGE, label="Go to Train", icon=":material/play_circle:")
        quick_start_button("figure1", key="network-quick-start")
    st.stop()

probe_groups = {r.group_id for r in runs}
group = linked_group_picker(
    "network",
    [g for g in store.list_groups() if g.id in probe_groups],
    max(runs, key=lambda r: r.id).group_id,  # the newest group with probes
    help="groups with runs trained with probes; type to find one by name or date",
)
runs = [r for r in runs if r.group_id == group.id]
if st.session_state.get("network-runs-of") != group.id:  # another group: all its probed runs
    st.session_state.pop("network-runs", None)
    st.session_state["network-runs-of"] = group.id
labels = {r.id: live.run_label(r) for r in runs}
left, right = st.columns([4, 1], vertical_alignment="bottom")
chosen = run_picker(
    runs,
    "network-runs",
    pv.default_selection(runs, probed),
    help="runs trained with probes; by default those of the newest group that has any",
    container=left,
)
unit = right.toggle(
    "Tracked unit",
    key="network-unit",
    help="the percentiles of one unit (channel 0 of a conv site, unit 0 of a dense site) "
    "instead of the whole layer",
)
scope = "unit" if unit else "layer"
chosen_ids = {r.id for r in chosen}
polling = any(r.active for r in runs if r.id in chosen_ids)


@st.fragment(run_every=1.0 if polling else None)
def charts() -> None:
    chosen = [r for r in store.list_runs() if r.id in chosen_ids]
    if polling and not any(r.active for r in chosen):
        st.rerun()  # all finished: a full rerun re-creates this fragment without polling
    if not chosen:
        st.info("Select one or more runs.", icon=":material/info:")
        return
    ids = [r.id for r in chosen]
    rows = store.probe_rows(ids)
    colors = pv.run_colors(ids)
    short = {r.id: f"#{r.id} {r.variant} s{r.seed}" for r in chosen}

    st.subheader("Percentiles of each activation's input")
    frame, scope_name = pv.percentile_frame(rows), pv.SCOPES[scope]
    for site in SITES:
        panels = list(zip(pv.split_by_bn(chosen, site), ("without BN", "with BN"), strict=True))
        figs = {
            what: pv.percentile_figure(
                frame, members, site, scope, colors=colors, title=f"{site} {what} · {scope_name}"
            )
            for members, what in panels
            if members
        }
        share_y(list(figs.values()))  # one scale: the drift without BN beside BN's steadiness
        for col, (members, what) in zip(st.columns(2), panels, strict=True):
            if not members:
                col.caption(f"{site} {what}: no selected run.")
                continue
            col.plotly_chart(
                figs[what],
                key=f"network-{site}-{what}",
                config=png_config(f"network-{site}-{what.replace(' ', '-')}-{scope}"),
            )

    left, right = st.columns(2)
    left.plotly_chart(
        pv.accuracy_figure(pv.accuracy_frame(rows), short, colors),
        key="network-accuracy",
        config=png_config("network-probe-accuracy"),
    )
    gap_rows = store.mode_gap_rows(ids)
    right.plotly_chart(
        pv.mode_gap_figure(gap_rows, short, colors),
        key="network-mode-gap",
        config=png_config("network-mode-gap"),
    )
    st.plotly_chart(
        pv.grad_norm_figure(store.grad_norm_rows(ids), short, colors),
        key="network-grad-norms",
        config=png_config("network-grad-norms"),
    )
    if gap_rows:
        st.caption(
            f"Last epoch's validation accuracy on the first {constants.MODE_GAP_SIZE} validation "
            "images (whole batches of the run's batch size) with BN's inference statistics and "
            "with each batch's own statistics; gap = batch statistics − inference."
        )
        st.table(pv.mode_gap_table(gap_rows, short).set_index("run"))


charts()
if not polling:
    st.button("Refresh", key="network-refresh", icon=":material/refresh:")
