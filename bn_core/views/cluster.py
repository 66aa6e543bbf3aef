"""The Ray cluster as the dashboard shows it: the "Run on" choice's labels, the Cluster page's
table of nodes with the runs each host trains, and the banner of runs waiting for a cluster
that is gone.

No Streamlit and no Ray here: a ``ClusterInfo``
(``bn_core.runs.execution.backends.ray_backend``, read by the page through the runner's backend)
and run records in, strings and a DataFrame out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pandas as pd

from bn_core.runs.execution import ClusterInfo
from bn_core.runs.store import RunRecord
from bn_core.vocabulary import STARTED

NODE_COLUMNS: tuple[str, ...] = ("host", "node id", "alive", "CPUs", "GPUs", "head", "running runs")
NODE_ID_CHARS = 12  # as Ray's own dashboard and `ray status` abbreviate node ids
LOCAL_LABEL = "This machine"
NO_CLUSTER_TEXT = (
    "Runs execute on this machine, one worker process each.\n\n"
    "To train on a Ray cluster instead, start the dashboard with `RAY_ADDRESS=HOST:6379` (the "
    "cluster's head) or with `docker compose --profile cluster up`; Train and Sweep then offer "
    'where to run. See the README, "Running on a Ray cluster", and docs/CLUSTER.md.'
)


def cluster_label(info: ClusterInfo) -> str:
    """'Ray cluster (8 CPUs on 3 nodes)': the live nodes and their CPUs."""
    alive = sum(node.alive for node in info.nodes)
    return (
        f"Ray cluster ({info.cpus:g} CPU{'s' * (info.cpus != 1)} on {alive} "
        f"node{'s' * (alive != 1)})"
    )


def dashboard_link(url: str | None) -> str | None:
    """Ray's own dashboard as a link a browser opens (Ray reports '127.0.0.1:8265', without a
    scheme); None when the cluster reported none."""
    url = (url or "").strip()
    if not url:
        return None
    return url if "://" in url else f"http://{url}"


def running_by_host(runs: Iterable[RunRecord]) -> Counter:
    """Ray runs that are starting or running, counted by the host they run on (``run.node``);
    a run still waiting for a node (no host yet) counts under None."""
    return Counter(run.node for run in runs if run.backend_name == "ray" and run.status in STARTED)


def node_frame(info: ClusterInfo, runs: Iterable[RunRecord]) -> pd.DataFrame:
    """One row per node of ``info`` with ``NODE_COLUMNS``: the head first, then live nodes,
    then by host. "running runs" counts the Ray runs of ``runs`` training on the node's host:
    a run records its host name, not its node, so nodes that share a host (several Ray nodes
    on one machine) each show that host's count."""
    counts = running_by_host(runs)
    nodes = sorted(info.nodes, key=lambda n: (not n.head, not n.alive, n.host, n.node_id))
    rows = [
        {
            "host": node.host,
            "node id": node.node_id[:NODE_ID_CHARS],
            "alive": node.alive,
            "CPUs": node.cpus,
            "GPUs": node.gpus,
            "head": node.head,
            "running runs": counts.get(node.host, 0),
        }
        for node in nodes
    ]
    return pd.DataFrame(rows, columns=list(NODE_COLUMNS))


def waiting_banner(problem: str, waiting: int) -> str:
    """The line every page shows while ``waiting`` runs are queued for a cluster that cannot
    take them (``JobRunner.cluster_problem``)."""
    return (
        f"The Ray cluster cannot take runs: {problem.rstrip('.')}. "
        f"{waiting} run{'s' * (waiting != 1)} wait{'s' * (waiting == 1)} for it."
    )
