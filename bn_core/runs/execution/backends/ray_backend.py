"""Runs on a Ray cluster: each run is one Ray task; its events come back to the store here.

Four modules: this one (``RayBackend``: the runner's backend, capacity, data, cancel),
``ray_cluster`` (joining the cluster, its settings, what the cluster panel shows),
``ray_relay`` (one thread per run on this machine: records its events, ends it) and
``ray_task`` (what runs on a node).

The store stays one SQLite file on this machine (the head, where the dashboard runs). Nodes
need neither the store nor a shared filesystem nor the dataset files:

- **Data.** The dataset is read here once and put in Ray's object store (``ray.put``), once
  per dataset and files, not once per run; each node fetches it once.
- **Events.** A run is a streaming-generator task (``ray_task.train_events``) that yields the
  engine's events as they happen. A relay thread here (one per run) records each into the
  store with the local worker's code (``bn_core.runs.execution.recording``), and beats the run's
  heartbeat: the live charts stay live, and a run is never left ``running`` once its relay
  or this process is gone (the runner judges owners and heartbeats as for local runs).
- **Checkpoints and models** travel as events (bytes, 0.75-2.2 MB a checkpoint) and are
  written here, so a run resumes on any node, or locally, and replays work as for local runs.
- **Resources.** A task asks Ray for ``num_cpus`` CPUs (``BN_LAB_RAY_CPUS``, default 1) and
  ``num_gpus`` GPUs (``BN_LAB_RAY_GPUS``, default 0) and sizes TensorFlow's thread pools to
  match; each task runs in a fresh worker process (``max_calls=1``), as a local run does.
  A task is never retried by Ray (``max_retries=0``): a run executes exactly once, and a
  lost one is ``interrupted`` (resume continues it from its checkpoint).
- **Cancel** escalates as locally: the cooperative flag first (a small ``Cancels`` actor
  pinned to this node, polled by the task every second), then ``ray.cancel`` after the
  runner's grace period (``terminate``), then ``ray.cancel(force=True)`` (``kill``).
- **Failures.** A node that dies mid-run ends its runs ``interrupted`` with every metric
  received kept, naming the node; an exception in the task ends it ``failed`` with its
  one-line message.

The handle the runner keeps (``runs.pid``) is a number of this backend's own, counted from
1; only this process (the run's owner) ever asks the backend about it (``reaper.dead``).
Ray is imported only when a backend connects: without ``RAY_ADDRESS`` or ``--backend ray``
nothing imports it. Ray's own transport pickles between the nodes of a cluster, so a cluster
must be one you trust (Ray's security guidance); BN Lab itself unpickles nothing it receives.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from typing import Any

from bn_core.runs.execution.backends import Backend
from bn_core.runs.execution.backends.ray_cluster import (
    NAMESPACE,
    ClusterError,
    ClusterInfo,
    NodeInfo,
    connect,
    dashboard_url,
    ray_address,
    resources_from_env,
)
from bn_core.runs.execution.backends.ray_relay import Relay
from bn_core.runs.store.run_store import RunStore

CANCELS_ACTOR = "bn-lab-cancels"
HANDLE_BASE = 1 << 40  # handles start here: never a process id, so never mistaken for one
KEEP_RELAYS = 1000  # ended relays kept for relay_stats before the oldest are forgotten

__all__ = [
    "NAMESPACE",
    "Cancels",
    "ClusterError",
    "ClusterInfo",
    "NodeInfo",
    "RayBackend",
    "connect",
    "ray_address",
    "resources_from_env",
]


class Cancels:
    """The cancel flags of this head's runs, an actor pinned to this node (``num_cpus=0``):
    the relay sets its attempt's flag (a token, "RUN_ID:HANDLE"), its task polls it, and the
    relay forgets it once the run has ended."""

    def __init__(self):
        self._tokens: set[str] = set()

    def cancel(self, token: str) -> None:
        self._tokens.add(str(token))

    def forget(self, token: str) -> None:
        self._tokens.discard(str(token))

    def cancelled(self, token: str) -> bool:
        return str(token) in self._tokens


class RayBackend(Backend):
    """Runs on the Ray cluster at ``address`` (default ``$RAY_ADDRESS``, else ``auto``), each
    asking for ``num_cpus`` CPUs and ``num_gpus`` GPUs (default: ``resources_from_env``)."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
    ):
        cpus, gpus = resources_from_env()
        self.address = ray_address(address) or "auto"
        self.num_cpus = float(num_cpus if num_cpus is not None else cpus)
        self.num_gpus = float(num_gpus if num_gpus is not None else gpus)
        self._ray: Any = None
        self._cancels: Any = None
        self._remote: Any = None
        self._handles = itertools.count(HANDLE_BASE)
        self._relays: dict[int, Relay] = {}
        self._data: dict[tuple[str, str | None], tuple[Any, Any]] = {}  # -> (stamp, ObjectRef)
        self._lock = threading.Lock()
        self._data_lock = threading.Lock()  # one read and put of a dataset at a time
        self._capacity = (0.0, 0)  # (when read, runs the cluster has room for)

    # -- the cluster ----------------------------------------------------------------------------

    def connect(self) -> None:
        """Join the cluster (once) and set up the cancel actor and the remote function."""
        with self._lock:
            if self._ray is not None and self._ray.is_initialized():
                return
            ray = connect(self.address)
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            from bn_core.runs.execution.backends.ray_task import train_events

            here = ray.get_runtime_context().get_node_id()
            pinned = NodeAffinitySchedulingStrategy(node_id=here, soft=False)
            self._cancels = (
                ray.remote(Cancels)
                .options(num_cpus=0, scheduling_strategy=pinned, name=None, max_restarts=0)
                .remote()
            )
            self._remote = ray.remote(
                num_returns="streaming", max_calls=1, max_retries=0, retry_exceptions=False
            )(train_events)
            self._ray = ray

    def capacity(self) -> int:
        """How many runs the cluster's live nodes have room for at once, node by node (read
        every 5 s); raises ``ClusterError`` when the cluster cannot be reached or no node can
        take a run."""
        now = time.time()
        if now - self._capacity[0] < 5.0:
            return self._capacity[1]
        self.connect()
        try:
            nodes = [node for node in self._ray.nodes() if node.get("Alive")]
        except Exception as exc:  # noqa: BLE001 - any failure here means: no cluster
            raise ClusterError(f"the Ray cluster at {self.address} is unreachable: {exc}") from None
        room = sum(self._room(node.get("Resources", {})) for node in nodes)
        if room == 0:
            gpus = f" and {self.num_gpus:g} GPU(s)" if self.num_gpus else ""
            raise ClusterError(
                f"no live node of the Ray cluster at {self.address} has {self.num_cpus:g} "
                f"CPU(s){gpus} for a run: add nodes, or lower BN_LAB_RAY_CPUS / BN_LAB_RAY_GPUS"
            )
        self._capacity = (now, room)
        return room

    def _room(self, resources: dict) -> int:
        """How many runs fit on a node with ``resources`` (a run never spans nodes)."""
        room = int(resources.get("CPU", 0) // self.num_cpus)
        if self.num_gpus > 0:
            room = min(room, int(resources.get("GPU", 0) // self.num_gpus))
        return room

    def info(self) -> ClusterInfo:
        """The cluster's nodes (for the dashboard's cluster panel)."""
        self.connect()
        head = self._ray.get_runtime_context().get_node_id()
        nodes = tuple(
            NodeInfo(
                node_id=node["NodeID"],
                host=node.get("NodeManagerHostname", "?"),
                address=node.get("NodeManagerAddress", "?"),
                alive=bool(node.get("Alive")),
                cpus=float(node.get("Resources", {}).get("CPU", 0)),
                gpus=float(node.get("Resources", {}).get("GPU", 0)),
                head=node["NodeID"] == head,
            )
            for node in self._ray.nodes()
        )
        return ClusterInfo(self.address, dashboard_url(), nodes)

    # -- the Backend protocol -------------------------------------------------------------------

    def start(self, run_id: int, store: RunStore) -> int:
        """Start run ``run_id`` (``starting``, owned by this process) as a Ray task; returns
        its handle. Raises ``ClusterError`` when the cluster cannot be reached (the runner
        leaves the run queued)."""
        self.connect()
        self.close()  # forget relays that ended long ago
        handle = next(self._handles)
        relay = Relay(self, handle, run_id, store)
        relay.start()  # raises if the run is no longer this runner's to start
        self._relays[handle] = relay
        return handle

    def alive(self, handle: int) -> bool:
        relay = self._relays.get(handle)
        return relay is not None and relay.thread.is_alive()

    def terminate(self, handle: int) -> None:
        """``ray.cancel`` the run's task (KeyboardInterrupt in it)."""
        self._cancel(handle, force=False)

    def kill(self, handle: int) -> None:
        """``ray.cancel(force=True)``: its worker process is killed."""
        self._cancel(handle, force=True)

    def _cancel(self, handle: int, force: bool) -> None:
        relay = self._relays.get(handle)
        if relay is not None and relay.generator is not None:
            relay.escalated = True
            with contextlib.suppress(Exception):  # already ended, or the cluster is gone
                self._ray.cancel(relay.generator, force=force)

    def relay_stats(self) -> dict[int, dict[str, float | int | None]]:
        """Per run started here: events relayed, median and largest lag (s, from the task's
        yield to the row in the store), seconds from submitting its task to its first event
        from a node (scheduling, worker start, data transfer), its node and how many times
        its task started. For ``bench/`` and the tests."""
        stats = {}
        for relay in list(self._relays.values()):
            lags = sorted(relay.lags)
            started = None
            if relay.submitted is not None and relay.on_node is not None:
                started = relay.on_node - relay.submitted
            stats[relay.run_id] = {
                "events": len(lags),
                "lag_median": lags[len(lags) // 2] if lags else None,
                "lag_max": lags[-1] if lags else None,
                "to_node": started,
                "node": relay.node[0] if relay.node else None,
                "node_id": relay.node[1] if relay.node else None,
                "starts": relay.starts,
            }
        return stats

    def close(self) -> None:
        """Forget the oldest ended relays beyond ``KEEP_RELAYS`` (running ones go on until
        their run ends; a process that exits leaves its runs to the next runner)."""
        ended = [h for h, relay in list(self._relays.items()) if not relay.thread.is_alive()]
        for handle in ended[: max(0, len(ended) - KEEP_RELAYS)]:
            self._relays.pop(handle, None)

    # -- data ------------------------------------------------------------------------------------

    def dataset(self, dataset: str, data_dir: str | None) -> Any:
        """The dataset's raw arrays in Ray's object store: read and put once per dataset and
        files (a file that changes is read again)."""
        from bn_core import data as data_lib
        from bn_core.data.search import files_stamp, find_local

        key = (dataset, data_dir)
        with self._data_lock:  # a study's runs start together: one reads, the others reuse
            hit, _ = find_local(dataset, data_dir)
            stamp = files_stamp(hit) if hit is not None else None
            cached = self._data.get(key)
            if cached is not None and stamp is not None and cached[0] == stamp:
                return cached[1]
            raw = data_lib.load_raw(dataset, data_dir)  # may download, as a local run would
            ref = self._ray.put(raw)  # the previous ref of this key is released with it
            if stamp is None and (hit := find_local(dataset, data_dir)[0]) is not None:
                stamp = files_stamp(hit)  # downloaded just now
            self._data[key] = (stamp, ref)
            return ref
