"""Joining a Ray cluster: where it is (``RAY_ADDRESS``), what a run asks of it
(``BN_LAB_RAY_CPUS``/``BN_LAB_RAY_GPUS``), a fast check that something answers there, and
what the cluster panel shows of it (``ClusterInfo``). A cluster that cannot be used is a
``ClusterError`` whose text is one line saying what is wrong and what to do.

Ray is imported only by ``connect``: importing this module imports neither Ray nor TensorFlow.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

from bn_core import settings
from bn_core.messages import one_line

NAMESPACE = "bn-lab"
CONNECT_SECONDS = 3.0  # how long an address may take to answer before it counts as gone


def lost_errors(ray: Any) -> tuple[type, ...]:
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
    (default 0), read with ``bn_core.settings``. A bad value is a ``ClusterError``."""
    try:
        return settings.value("BN_LAB_RAY_CPUS"), settings.value("BN_LAB_RAY_GPUS")
    except settings.SettingError as exc:
        raise ClusterError(str(exc)) from None


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
        first = one_line(exc, limit=160)
        where = "on this machine" if target == "auto" else f"at {target}"
        raise ClusterError(
            f"could not join a Ray cluster {where} ({first}): start one with "
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


def dashboard_url() -> str | None:
    """Ray's own dashboard, as the cluster reported it when this process joined."""
    return _dashboard[0]


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
