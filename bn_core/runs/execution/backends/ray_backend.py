"""Runs on a Ray cluster: each run is one Ray task; its events come back to the store here.

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
import errno
import itertools
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from bn_core.atomic import atomic_path
from bn_core.data.files import DatasetError
from bn_core.runs.execution.recording import (
    HEARTBEAT_SECONDS,
    Resumed,
    finish,
    heartbeat,
    record_event,
)
from bn_core.runs.store import owner
from bn_core.runs.store.errors import StoreError, describe
from bn_core.runs.store.records import STARTING
from bn_core.runs.store.run_store import RunStore

NAMESPACE = "bn-lab"
CANCELS_ACTOR = "bn-lab-cancels"
WAITING = "waiting for a Ray node"  # a run's stage until its task starts on a node
CONNECT_SECONDS = 3.0  # how long an address may take to answer before it counts as gone
HANDLE_BASE = 1 << 40  # handles start here: never a process id, so never mistaken for one
KEEP_RELAYS = 1000  # ended relays kept for relay_stats before the oldest are forgotten


def _lost_errors(ray: Any) -> tuple[type, ...]:
    """Ray's exceptions that mean the run's node, worker or data was lost (not its code)."""
    errors = ray.exceptions
    return (
        errors.NodeDiedError,
        errors.WorkerCrashedError,
        errors.LocalRayletDiedError,
        errors.ObjectLostError,  # and its subclasses: reconstruction failed, fetch timed out
        errors.OwnerDiedError,
        errors.RaySystemError,
        errors.OutOfMemoryError,  # Ray's memory monitor killed the worker (as an OOM kill here)
        errors.ActorDiedError,
    )


class ClusterError(RuntimeError):
    """No cluster to run on; ``str(e)`` is one line saying what is wrong and what to do."""


def ray_address(address: str | None = None) -> str | None:
    """The cluster to join: ``address``, else ``$RAY_ADDRESS``, else None (none configured)."""
    return (address or os.environ.get("RAY_ADDRESS") or "").strip() or None


def resources_from_env() -> tuple[float, float]:
    """(CPUs, GPUs) a run asks for: ``$BN_LAB_RAY_CPUS`` (default 1), ``$BN_LAB_RAY_GPUS``
    (default 0). A bad value is a ``ClusterError``."""
    values = []
    for name, default in (("BN_LAB_RAY_CPUS", 1.0), ("BN_LAB_RAY_GPUS", 0.0)):
        text = os.environ.get(name, "").strip()
        try:
            value = float(text) if text else default
        except ValueError:
            value = -1.0
        if not (0 <= value <= 256) or (name == "BN_LAB_RAY_CPUS" and value < 1):
            low = 1 if name == "BN_LAB_RAY_CPUS" else 0
            raise ClusterError(
                f"{name}={text!r} is not a number from {low} to 256: fix or unset it"
            )
        values.append(value)
    return values[0], values[1]


def _reachable(address: str) -> None:
    """Raise ``ClusterError`` unless something listens at ``address`` (HOST:PORT), so a wrong
    address fails in seconds with one line instead of Ray's minute of retries."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdecimal():
        raise ClusterError(
            f"RAY_ADDRESS={address!r} is not HOST:PORT (e.g. 10.0.0.5:6379): fix it, or unset "
            "it to run on this machine"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS):
            pass
    except OSError as exc:
        raise ClusterError(
            f"no Ray cluster answers at {target} ({exc.strerror or exc}): start its head with "
            "`ray start --head --port 6379`, fix RAY_ADDRESS, or unset it to run on this machine"
        ) from None


def connect(address: str | None = None) -> Any:
    """Join the Ray cluster at ``ray_address(address)`` (``auto``: the one ``ray start`` runs
    on this machine) as a driver, if not joined yet; returns the ``ray`` module. Raises
    ``ClusterError`` (one line) when Ray is not installed or no cluster answers."""
    try:
        import ray
    except ImportError:
        raise ClusterError(
            "the Ray backend needs Ray: pip install 'bn-lab[ray]' (or requirements-ray.txt)"
        ) from None
    if ray.is_initialized():
        return ray
    target = ray_address(address) or "auto"
    if target != "auto" and not target.startswith("ray://"):
        _reachable(target)
        if not _raylet_here():
            raise ClusterError(
                f"this machine is not a node of the Ray cluster at {target}: run `ray start "
                f"--address={target} --num-cpus=0` here first (the dashboard's machine joins "
                "the cluster, holding no runs), or start the dashboard on the cluster's head"
            )
    try:
        info = ray.init(
            address=target,
            namespace=NAMESPACE,
            log_to_driver=False,
            logging_level="ERROR",
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = "on this machine" if target == "auto" else f"at {target}"
        raise ClusterError(
            f"could not join a Ray cluster {where} ({first[:160]}): start one with "
            "`ray start --head`, or set RAY_ADDRESS=HOST:6379"
        ) from None
    _dashboard[0] = getattr(info, "dashboard_url", None) or None
    return ray


def _raylet_here() -> bool:
    """Whether a Ray node (its raylet) runs on this machine: a Ray driver can only join a
    cluster through a node of its own machine (else ``ray.init`` retries for a minute)."""
    import psutil

    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "raylet":
            return True
    return False


_dashboard: list[str | None] = [None]  # Ray's own dashboard, as the cluster reported it


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


@dataclass(frozen=True)
class NodeInfo:
    """One node of the cluster, as the cluster panel shows it."""

    node_id: str
    host: str
    address: str
    alive: bool
    cpus: float
    gpus: float
    head: bool


@dataclass(frozen=True)
class ClusterInfo:
    address: str
    dashboard_url: str | None
    nodes: tuple[NodeInfo, ...]

    @property
    def cpus(self) -> float:
        return sum(node.cpus for node in self.nodes if node.alive)


class RayBackend:
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
        self._relays: dict[int, _Relay] = {}
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
        return ClusterInfo(self.address, _dashboard[0], nodes)

    # -- the Backend protocol -------------------------------------------------------------------

    def start(self, run_id: int, store: RunStore) -> int:
        """Start run ``run_id`` (``starting``, owned by this process) as a Ray task; returns
        its handle. Raises ``ClusterError`` when the cluster cannot be reached (the runner
        leaves the run queued)."""
        self.connect()
        self.close()  # forget relays that ended long ago
        handle = next(self._handles)
        relay = _Relay(self, handle, run_id, store)
        relay.start()  # raises if the run is no longer this runner's to start
        self._relays[handle] = relay
        return handle

    def alive(self, pid: int) -> bool:
        relay = self._relays.get(pid)
        return relay is not None and relay.thread.is_alive()

    def terminate(self, pid: int) -> None:
        """``ray.cancel`` the run's task (KeyboardInterrupt in it)."""
        self._cancel(pid, force=False)

    def kill(self, pid: int) -> None:
        """``ray.cancel(force=True)``: its worker process is killed."""
        self._cancel(pid, force=True)

    def _cancel(self, pid: int, force: bool) -> None:
        relay = self._relays.get(pid)
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


class _Relay:
    """One run on the cluster: submits its task, records what it yields, ends it."""

    def __init__(self, backend: RayBackend, handle: int, run_id: int, store: RunStore):
        self.backend, self.handle, self.run_id, self.store = backend, handle, run_id, store
        self.holder = f"{owner.current()}/ray-{handle}"  # this attempt's owner string
        self.token = f"{run_id}:{handle}"  # this attempt's cancel flag (``Cancels``)
        self.generator: Any = None
        self.escalated = False  # the runner called terminate/kill
        self.node: tuple[str, str] | None = None  # (hostname, node id) once the task started
        self.submitted: float | None = None  # when its task was submitted
        self.on_node: float | None = None  # when its first event (from the node) arrived
        self.lags: list[float] = []  # seconds from each engine event's yield to its record
        self.starts = 0  # times its task started on a node: 1 (Ray never retries it)
        self.thread = threading.Thread(target=self._run, name=f"bn-lab-ray-{run_id}", daemon=True)

    def start(self) -> None:
        # The run becomes this relay's (a resumed run's new attempt is another owner), and it
        # waits for a node as "running" with a heartbeat: a busy cluster may take a while.
        if not self.store.transition(
            self.run_id,
            ("starting",),
            "running",
            owner=self.holder,
            heartbeat=time.time(),
            stage=WAITING,
            node=None,
        ):  # cancelled meanwhile, or taken by another runner: not ours to start
            raise ClusterError(f"run #{self.run_id} is no longer waiting to start")
        self.thread.start()

    def _run(self) -> None:
        stop, ended = threading.Event(), threading.Event()
        status, fields = "failed", {}
        with heartbeat(self.store, self.run_id, self.holder, stop):
            flagger = threading.Thread(target=self._flag_when, args=(stop, ended), daemon=True)
            flagger.start()
            finished = False
            try:
                status, fields = self._relay()
                finished = True
            except StoreError as exc:  # the store cannot record it: stop the task, say why
                status, fields = "failed", {"error": str(exc)}
            except OSError as exc:  # writing its checkpoint or model here
                status, fields = "failed", {"error": f"could not write its files: {exc}"}
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    status, fields = "failed", {"error": describe("full", self.store.path)}
            except DatasetError as exc:  # read here, before any task: as a local run says it
                status, fields = "failed", {"error": str(exc)}
            except Exception as exc:  # noqa: BLE001 - Ray's errors: see _ended
                status, fields = self._ended(exc)
            finally:
                ended.set()
                if not finished and self.generator is not None:
                    self._stop_task()  # no one records it any more: free its node now
            finish(self.store, self.run_id, status, fields, self.holder)
        with contextlib.suppress(Exception):
            self.backend._cancels.forget.remote(self.token)

    def _relay(self) -> tuple[str, dict]:
        ray, store, run_id = self.backend._ray, self.store, self.run_id
        run = store.get(run_id)
        if run is None:
            return "failed", {"error": f"run #{run_id} is damaged in the store"}
        checkpoint_path = store.checkpoint_path(run_id)
        saved = checkpoint_path.read_bytes() if checkpoint_path.exists() else None
        raw = self.backend.dataset(run.config.dataset, run.config.data_dir)
        if store.cancel_requested(run_id):  # while its data was read: no task at all
            return "cancelled", {"error": "cancelled before it started on a node"}
        self.generator = self.backend._remote.options(
            num_cpus=self.backend.num_cpus, num_gpus=self.backend.num_gpus
        ).remote(
            run_id,
            run.config.to_dict(),
            raw,
            saved,
            self.backend._cancels,
            int(self.backend.num_cpus),
            self.token,
        )
        self.submitted = time.time()
        resumed = Resumed(store, run_id, again=run.resumes > 0)
        done: dict = {"status": "failed", "error": "the Ray task ended without its result"}
        for ref in self.generator:
            event = ray.get(ref)
            kind = event["type"]
            if kind == "node":
                self.starts += 1
                self.on_node = time.time()
                self.node = (event["node"], event["node_id"])
                store.update(run_id, node=event["node"], started_at=time.time(), stage=STARTING)
            elif kind == "restart":
                resumed.pending = True
                checkpoint_path.unlink(missing_ok=True)
            elif kind == "checkpoint":
                with atomic_path(checkpoint_path, suffix=".npz") as tmp:
                    tmp.write_bytes(event["data"])
            elif kind == "model":
                store.update(run_id, stage="saving the model")
                with atomic_path(store.model_path(run_id), suffix=".keras") as tmp:
                    tmp.write_bytes(event["data"])
            elif kind == "done":
                done = event
            elif kind != "end":
                sent = event.pop("sent", None)
                resumed.on_event(event)
                record_event(store, run_id, event)
                if sent is not None:  # clocks of one machine in tests; NTP-close on a cluster
                    self.lags.append(time.time() - sent)
        status = done["status"]
        if status in ("completed", "diverged"):
            checkpoint_path.unlink(missing_ok=True)  # nothing left to resume
        fields = {k: done.get(k) for k in ("error", "test_loss", "test_accuracy")}
        if done.get("images_per_second") is not None:
            fields["images_per_second"] = done["images_per_second"]
        return status, fields

    def _ended(self, exc: Exception) -> tuple[str, dict]:
        """The status and error of a run whose task raised ``exc``."""
        errors = self.backend._ray.exceptions
        cancel = self.store.cancel_requested(self.run_id)
        if isinstance(exc, errors.TaskCancelledError) or (self.escalated and cancel):
            return ("cancelled" if cancel else "interrupted"), {
                "error": "the Ray task was cancelled; metrics up to then are kept"
            }
        if isinstance(exc, (*_lost_errors(self.backend._ray), ConnectionError)):
            if self.node is not None:
                where = f"the Ray node {self.node[0]} (node id {self.node[1][:12]}) was lost"
            else:
                where = f"the Ray cluster at {self.backend.address} was lost"
            return "interrupted", {"error": f"{where}; metrics up to then are kept"}
        cause = getattr(exc, "cause", None) or exc
        text = str(cause).strip().splitlines()
        line = text[0] if text else type(cause).__name__
        return "failed", {"error": f"on Ray: {line[:300]}"}

    def _flag_when(self, stop: threading.Event, ended: threading.Event) -> None:
        """Set the run's cancel flag for its task once ``stop`` is set (a cancel, or the run
        lost to another attempt), unless the relay has ended first."""
        while not ended.is_set():
            if stop.wait(HEARTBEAT_SECONDS / 2) and not ended.is_set():
                self._flag()
                return

    def _flag(self) -> None:
        with contextlib.suppress(Exception):
            self.backend._cancels.cancel.remote(self.token)

    def _stop_task(self) -> None:
        with contextlib.suppress(Exception):
            self.backend._ray.cancel(self.generator, force=True)
