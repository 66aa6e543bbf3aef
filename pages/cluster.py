"""Cluster: where runs execute. Without $RAY_ADDRESS, this machine (and how to use a cluster);
with it, the Ray cluster's address, a link to Ray's own dashboard, and its nodes with the runs
each host trains (``views.cluster.node_frame``). The cluster's answer is at most
``_cluster_ui.CLUSTER_SECONDS`` old; Refresh asks again once it is older."""

import streamlit as st

from bn_core.runs.execution import ray_address
from bn_core.views import cluster as view
from bn_core.vocabulary import STARTED
from pages._cluster_ui import cluster_reach
from pages._runner import get_runner
from pages._ui import store_banner, use_navigation

use_navigation()
st.title("Cluster")
store_banner(move_key="cluster-run-here")  # runs waiting for a gone cluster: run them here
if ray_address() is None:
    st.info(view.NO_CLUSTER_TEXT, icon=":material/computer:")
    st.stop()
reach = cluster_reach()
if reach.info is None:
    st.error(reach.problem, icon=":material/error:")
    st.stop()

info = reach.info
address_col, link_col, refresh_col = st.columns([4, 2, 1], vertical_alignment="center")
address_col.markdown(f"**{view.cluster_label(info)}** at `{info.address}`")
if link := view.dashboard_link(info.dashboard_url):
    link_col.link_button("Ray dashboard", link, icon=":material/open_in_new:")
refresh_col.button("Refresh", key="cluster-refresh", icon=":material/refresh:")

store = get_runner().store
active = store.list_runs(STARTED)
st.dataframe(
    view.node_frame(info, active),
    hide_index=True,
    column_config={
        "CPUs": st.column_config.NumberColumn("CPUs", format="%g"),
        "GPUs": st.column_config.NumberColumn("GPUs", format="%g"),
        "running runs": st.column_config.NumberColumn(
            "running runs", help="Ray runs training on the node's host now"
        ),
    },
)
waiting_node = view.running_by_host(active).get(None, 0)
st.caption(
    f"{store.queued_for('ray')} run(s) queued for the cluster, {waiting_node} waiting for a node. "
    "Each run is one Ray task; its metrics, checkpoints and model come back to this machine's "
    "run store, so the Runs page shows it as any other run."
)
