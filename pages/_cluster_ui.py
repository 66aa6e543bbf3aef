"""The pages' view of the Ray cluster (imported as ``pages._cluster_ui``): whether it answers,
the banner for runs waiting for it, and the "Run on" choice. Nothing imports Ray without
$RAY_ADDRESS."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from bn_core.messages import one_line
from bn_core.runs.execution import ClusterInfo, JobRunner, ray_address
from bn_core.runs.store import StoreError
from bn_core.views import cluster as cluster_view
from pages import _runner

CLUSTER_SECONDS = 5.0  # how long one answer of the cluster is reused: pages stay quick


def cluster_banner(move_key: str | None = None, read_only: str | None = None) -> None:
    """While the runner's Ray cluster cannot take runs (``JobRunner.cluster_problem``) and runs
    are queued for it: one st.warning saying so; with ``move_key``, a "Run them on this
    machine" button (keyed ``move_key``) that sends them to the local backend, which starts
    them within its poll interval. Drawn on one or two pages only: one click is enough."""
    runner = _runner.get_runner()
    if said := st.session_state.pop("cluster-moved", None):  # the button's last click
        ok, text = said
        if ok:
            st.success(text, icon=":material/check:")
        else:
            st.error(text, icon=":material/error:")
    if not runner.cluster_problem:
        return
    try:
        waiting = runner.store.queued_for("ray")
    except StoreError:  # the store banner above already says the store cannot be read
        return
    if not waiting:
        return
    st.warning(
        cluster_view.waiting_banner(runner.cluster_problem, waiting), icon=":material/cloud_off:"
    )
    if move_key is not None:
        st.button(
            "Run them on this machine",
            key=move_key,
            on_click=_run_waiting_here,
            disabled=read_only is not None,
            help=read_only or "queue them for this machine's worker processes instead",
            icon=":material/computer:",
        )


def _run_waiting_here() -> None:
    """The button's click (before the page reruns): the runs queued for Ray go local."""
    try:
        moved = _runner.get_runner().store.move_queued("ray", "local")
    except StoreError as exc:  # a full disk, say: one line
        st.session_state["cluster-moved"] = (False, str(exc))
    else:
        st.session_state["cluster-moved"] = (True, f"{moved} run(s) will run on this machine.")


@dataclass(frozen=True)
class ClusterReach:
    """What the cluster answered: its nodes (``info``), or why it cannot be used (``problem``,
    one line)."""

    info: ClusterInfo | None
    problem: str | None


def cluster_reach() -> ClusterReach | None:
    """The Ray cluster at $RAY_ADDRESS as the runner sees it, at most ``CLUSTER_SECONDS`` old;
    None when no cluster is configured (nothing imports Ray then). The runner's cluster
    backend is made here when it has none yet, so the runs queued for it start on the
    connection this check made."""
    address = ray_address()
    if address is None:
        return None
    runner = _runner.get_runner()
    return _ask_cluster(address, runner.runner_id, runner)


@st.cache_data(ttl=CLUSTER_SECONDS, show_spinner=False)
def _ask_cluster(address: str, runner_id: str, _jobs: JobRunner) -> ClusterReach:
    """``cluster_reach``'s answer, cached per address and runner (``_jobs`` itself is not
    hashed: its id stands for it)."""
    try:
        cluster = _jobs.ensure_cluster()
        cluster.capacity()
        return ClusterReach(cluster.info(), None)
    except Exception as exc:  # noqa: BLE001 - ClusterError, or Ray failing in its own ways
        return ClusterReach(None, one_line(exc))


def backend_choice(key: str) -> str:
    """Where the runs a page queues execute: "ray" or "local". A "Run on" radio (keyed
    ``key``, the cluster first chosen) when a cluster is configured and answers; a one-line
    caption when it is configured but does not answer; nothing without $RAY_ADDRESS."""
    reach = cluster_reach()
    if reach is None:
        return "local"
    if reach.info is None:
        st.caption(f":material/cloud_off: Runs execute on this machine: {reach.problem}")
        return "local"
    labels = {"local": cluster_view.LOCAL_LABEL, "ray": cluster_view.cluster_label(reach.info)}
    return st.radio(
        "Run on",
        list(labels),
        index=1,
        format_func=labels.get,
        key=key,
        horizontal=True,
        help="each run is one Ray task on a node with room; its metrics, checkpoints and "
        "model come back to this machine's run store",
    )
