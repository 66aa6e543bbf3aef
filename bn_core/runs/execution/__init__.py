"""The execution room: where queued runs train and how their events reach the store.

``runner.JobRunner`` claims queued runs (and window replays) up to its limits (``caps``) and
starts each on a backend (``backends``: local processes, or Ray tasks on a cluster);
``worker`` is a local run's process, ``recording`` the one path by which every run's events
and end are written (the worker, the Ray relay and ``bn-lab study`` alike), ``reaper``
ends runs whose process is gone, ``resume`` queues an ended run again. This module is the
room's facade: code outside ``bn_core.runs`` imports from here, never from the modules above.
Importing it imports neither TensorFlow nor Ray.
"""

from bn_core.runs.execution import caps
from bn_core.runs.execution.backends.local import LocalProcessBackend
from bn_core.runs.execution.backends.ray_backend import (
    ClusterError,
    ClusterInfo,
    NodeInfo,
    RayBackend,
    ray_address,
    resources_from_env,
)
from bn_core.runs.execution.reaper import reap
from bn_core.runs.execution.runner import JobRunner, default_concurrency

__all__ = [
    "ClusterError",
    "ClusterInfo",
    "JobRunner",
    "LocalProcessBackend",
    "NodeInfo",
    "RayBackend",
    "caps",
    "default_concurrency",
    "ray_address",
    "reap",
    "resources_from_env",
]
