"""Who has a run: ``host/pid/start time`` of the process, and whether it is still alive.

Every run that is ``starting`` or ``running`` has an owner: the worker that trains it, the
``study`` process that trains it in its own process, the runner that is starting it. The
string is ``host/pid/start``:

- ``host`` names the machine and, on Linux, its boot (``boot_id``) and the PID namespace
  (two containers with one hostname, e.g. host networking, have different namespaces, and
  the same pid in each means different processes);
- ``start`` is when the process started, so a pid the OS reuses later for another program is
  not mistaken for the owner. On Linux it is the kernel's own count of clock ticks since boot
  (``/proc/PID/stat``), which a wall-clock step (NTP, a VM resumed) cannot move; elsewhere
  psutil's create time, compared with 2 s of room.

``alive(owner)`` answers for processes of this machine: True, False, or None when the owner
is on another machine (a Ray node, another container on a shared volume), whose death only
its missing heartbeats can show (``JobRunner.stale_after``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from pathlib import Path

import psutil

SLACK = 2.0  # seconds: psutil's create_time (derived from the wall clock) may move this much


@functools.cache
def _host() -> str:
    parts = [socket.gethostname().replace("/", "_").replace("~", "_") or "localhost"]
    with contextlib.suppress(OSError):  # Linux: this boot, this PID namespace
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8])
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return "~".join(parts)


def _started(pid: int) -> str:
    """``t<clock ticks since boot>`` (Linux) or ``c<create time, 1/100 s>``; raises
    ``psutil.NoSuchProcess`` when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():  # Linux, and the process is gone
            raise psutil.NoSuchProcess(pid) from None
    except OSError:
        pass
    else:
        return f"t{stat.rpartition(')')[2].split()[19]}"  # field 22, after "(comm)"
    return f"c{round(psutil.Process(pid).create_time() * 100)}"


def _same_start(recorded: str, now: str) -> bool:
    if recorded.startswith("t") or now.startswith("t"):
        return recorded == now
    try:
        return abs(int(recorded[1:]) - int(now[1:])) <= SLACK * 100
    except ValueError:
        return False


def owner_of(pid: int) -> str:
    """The owner string of process ``pid`` on this machine (``psutil.Error`` if it is gone)."""
    return f"{_host()}/{pid}/{_started(pid)}"


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
    if len(parts) < 3 or parts[0] != _host() or not parts[1].isdecimal():
        return None
    pid = int(parts[1])
    try:
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return False
        return _same_start(parts[2], _started(pid))
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # exists, but not ours to inspect (another user's): cannot tell
        return None
