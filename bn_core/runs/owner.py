"""Who has a run: ``host/pid/start time`` of the process, and whether it is still alive.

Every run that is ``starting`` or ``running`` has an owner: the worker that trains it, the
``study`` process that trains it in its own process, the runner that is starting it. The
string names the machine, the process id and the process's start time (psutil, rounded to
10 ms), so a pid the OS reuses later for another program is not mistaken for the owner.

``alive(owner)`` answers for processes of this machine: True, False, or None when the owner
is on another machine (a Ray node, another container on a shared volume), whose death only
its missing heartbeats can show (``JobRunner.stale_after``).
"""

from __future__ import annotations

import functools
import os
import socket

import psutil


@functools.cache
def _host() -> str:
    return socket.gethostname().replace("/", "_") or "localhost"


def _started(pid: int) -> float:
    return round(psutil.Process(pid).create_time(), 2)


def owner_of(pid: int) -> str:
    """The owner string of process ``pid`` on this machine (``psutil.Error`` if it is gone)."""
    return f"{_host()}/{pid}/{_started(pid):.2f}"


def current() -> str:
    """This process's owner string."""
    return owner_of(os.getpid())


def pid_of(owner: str | None) -> int | None:
    """The process id in ``owner`` (None without one)."""
    parts = (owner or "").split("/")
    return int(parts[1]) if len(parts) >= 3 and parts[1].isdecimal() else None


def alive(owner: str | None) -> bool | None:
    """Whether the process named by ``owner`` still runs (None: not this machine's, or no
    owner recorded)."""
    if not owner:
        return None
    parts = owner.split("/")  # host/pid/start[/anything a caller appends, e.g. a runner's id]
    if len(parts) < 3 or parts[0] != _host():
        return None
    pid_text, started_text = parts[1], parts[2]
    try:
        pid, started = int(pid_text), float(started_text)
    except ValueError:
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(round(process.create_time(), 2) - started) < 0.02
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # exists, but not ours to inspect (another user's): cannot tell
        return None
