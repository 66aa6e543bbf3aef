"""Runs as local processes: ``python -m bn_core.runs.worker RUN_ID``, one per run.

Each worker gets its own process session, so Ctrl-C in a terminal or a UI reload does not
reach it, and outlives the server that started it. A later server adopts it by its pid, read
from the store; since a pid may belong to another process by then, a pid only counts as a
worker, and is only ever signalled, while ``worker_process`` confirms it (with ``psutil``:
Linux, macOS and Windows alike). ``terminate`` and ``kill`` are SIGTERM and SIGKILL on POSIX,
TerminateProcess on Windows.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import psutil

from bn_core.runs.records import RunRecord
from bn_core.runs.store import RunStore

WORKER_MODULE = "bn_core.runs.worker"
# psutil's create_time is the boot time (whole seconds on Linux) plus clock ticks, so it can be
# up to a second off time.time(): the worker's own started_at is compared with this much room.
CLOCK_SLACK = 2.0


class LocalProcessBackend:
    """Each run is a child process in a new session; its output goes to ``logs/run-ID.log``.

    ``store`` (else the one ``start`` was last given) tells which run recorded a pid, so a
    process can be checked against that run (see ``worker_process``); without one, any
    bn_core worker's command line is enough.
    """

    def __init__(self, store: RunStore | None = None):
        self._children: dict[int, subprocess.Popen] = {}
        self._store = store

    def start(self, run_id: int, store: RunStore) -> int:
        self._store = store
        logs = store.home / "logs"
        logs.mkdir(exist_ok=True)
        env = {**os.environ, "BN_LAB_HOME": str(store.home.resolve())}
        with open(logs / f"run-{run_id}.log", "ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, str(run_id)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal or a UI reload does not reach it
            )
        self._children[child.pid] = child
        return child.pid

    def alive(self, pid: int) -> bool:
        child = self._children.get(pid)
        if child is not None:
            if child.poll() is None:
                return True
            del self._children[pid]  # reaped
            return False
        # A worker started by an earlier server process. After a restart its pid may belong
        # to an unrelated process now, so it only counts if it still is this run's worker.
        return self._adopted(pid) is not None

    def terminate(self, pid: int) -> None:
        process = self._process(pid)
        if process is not None:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                process.terminate()

    def kill(self, pid: int) -> None:
        process = self._process(pid)
        if process is not None:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                process.kill()

    def _process(self, pid: int) -> subprocess.Popen | psutil.Process | None:
        """Our child ``pid`` (signalling it is a no-op once it is reaped), else the adopted
        worker ``pid`` (psutil re-checks its create time before each signal); None for
        anything else: never signal a stranger."""
        child = self._children.get(pid)
        return child if child is not None else self._adopted(pid)

    def _adopted(self, pid: int) -> psutil.Process | None:
        """``pid`` as a worker of a run that recorded it, or of any run without a store."""
        active = self._store.list_runs(("starting", "running")) if self._store else []
        runs = [run for run in active if run.pid == pid]
        if not runs:
            return worker_process(pid)
        return next(filter(None, (worker_process(pid, run) for run in runs)), None)


def worker_process(pid: int, run: RunRecord | None = None) -> psutil.Process | None:
    """The process ``pid`` if it is a live bn_core worker (of ``run``, if given), else None.

    Live: it exists and is not a zombie. A worker: its command line holds ``-m
    bn_core.runs.worker RUN_ID``. Of ``run``: RUN_ID is ``run.id``, and the process was created
    before the worker wrote ``run.started_at`` (one created later only reuses the pid).
    Processes that cannot be inspected (another user's) are not ours.
    """
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        args = process.cmdline()
        created = process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):  # ZombieProcess is a NoSuchProcess
        return None
    worker_args = _worker_args(args)
    if worker_args is None:
        return None
    if run is not None:
        if worker_args[:1] != [str(run.id)]:
            return None
        if run.started_at is not None and created > run.started_at + CLOCK_SLACK:
            return None
    return process


def _worker_args(args: list[str]) -> list[str] | None:
    """The arguments after ``-m bn_core.runs.worker`` in ``args``, or None if absent."""
    for i in range(len(args) - 1):
        if args[i] == "-m" and args[i + 1] == WORKER_MODULE:
            return args[i + 2 :]
    return None
