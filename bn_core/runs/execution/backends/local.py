"""Runs as local processes: ``python -m bn_core.runs.execution.worker RUN_ID``, one per run.

A worker spends seconds importing TensorFlow before it trains. So that a run the user
starts does not wait for that, the backend keeps one standby worker ready while nothing runs
(``prepare``, which the runner calls when it is idle): ``python -m bn_core.runs.execution.worker
--standby`` imports TensorFlow, then waits for a run id on its standard input; ``start`` hands
it the next run and it becomes that run's worker, one run per process as ever. A new standby
is only started once no run is active again, so it never competes with a run for the cores;
without one (or with ``standby=False``, or ``BN_LAB_STANDBY=0``) ``start`` starts a worker for
the run as before. The standby's input is a pipe from the server: when the server goes away,
a standby that has no run yet reads the end of it and exits.

Each worker gets its own process session, so Ctrl-C in a terminal or a UI reload does not
reach it, and outlives the server that started it. A later server adopts it by its pid, read
from the store; since a pid may belong to another process by then, a pid only counts as a
worker, and is only ever signalled, while ``worker_process`` confirms it (with ``psutil``:
Linux, macOS and Windows alike). ``terminate`` and ``kill`` are SIGTERM and SIGKILL on POSIX,
TerminateProcess on Windows.

Reaping: a child that exits stays a zombie (``<defunct>``) until its parent waits for it, and
a run's worker usually ends on its own, when nobody asks about it any more. So every process
any backend of this process starts is kept in one registry until it has been waited for, and
``reap`` (the runner calls it at every pass) waits for those that exited: a finished run's
worker, a replay, a standby that was killed or closed, and one that a later runner (another
backend, which adopted its run by pid) saw end.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import psutil

from bn_core import settings
from bn_core.runs.execution.backends import Backend
from bn_core.runs.replays import files as replays
from bn_core.runs.store.records import RunRecord
from bn_core.runs.store.run_store import RunStore
from bn_core.vocabulary import STARTED

WORKER_MODULE = "bn_core.runs.execution.worker"
REPLAY_MODULE = "bn_core.runs.replays.job"
STANDBY = (
    "--standby"  # bn_core.runs.execution.worker.STANDBY (not imported: the worker imports a lot)
)
# psutil's create_time is the boot time (whole seconds on Linux) plus clock ticks, so it can be
# up to a second off time.time(): the worker's own started_at is compared with this much room.
CLOCK_SLACK = 2.0


def standby_default() -> bool:
    """Keep a standby worker unless ``$BN_LAB_STANDBY`` is off (0/false/no/off; anything but
    a switch word is a SettingError)."""
    return settings.value("BN_LAB_STANDBY")


# Every process started by a backend of this process, until it has been waited for (``reap``).
_unreaped: dict[int, subprocess.Popen] = {}
_unreaped_lock = threading.Lock()


def reap_children() -> int:
    """Wait for every process a backend of this process started that has exited, so none
    lingers as a zombie; returns how many still run. Only our own ``Popen`` objects are
    polled: never ``waitpid(-1)``, which would take other code's children's exit statuses."""
    with _unreaped_lock:
        for pid, child in list(_unreaped.items()):
            if child.poll() is not None:
                del _unreaped[pid]
        return len(_unreaped)


class LocalProcessBackend(Backend):
    """Each run is a child process in a new session; its output goes to ``logs/run-ID.log``.
    A handle is the process id of the run's worker (or replay process).

    ``store`` (else the one ``start`` was last given) tells which run recorded a pid, so a
    process can be checked against that run (see ``worker_process``); without one, any
    bn_core worker's command line is enough. ``standby`` (default: ``standby_default()``)
    lets ``prepare`` keep a standby worker ready.
    """

    runs_replays = True  # start_replay: a replay process, like a worker

    def __init__(self, store: RunStore | None = None, *, standby: bool | None = None):
        self._children: dict[int, subprocess.Popen] = {}
        self._store = store
        self.standby = standby_default() if standby is None else standby
        self._standby: tuple[subprocess.Popen, Path] | None = None  # (process, its store home)

    def start(self, run_id: int, store: RunStore) -> int:
        self._store = store
        child = self._hand_over(run_id, store)
        if child is None:
            child = self._spawn(str(run_id), store, store.log_path(run_id), subprocess.DEVNULL)
        self._children[child.pid] = child
        return child.pid

    def start_replay(self, run_id: int, store: RunStore) -> int:
        """Start run ``run_id``'s window replay, ``python -m bn_core.runs.replays.job RUN_ID``
        (TensorFlow loads there, never in the caller), output in ``logs/replay-ID.log``."""
        self._store = store
        log_path = replays.replay_log_path(store.home, run_id)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        replays.replay_progress_path(store.home, run_id).unlink(missing_ok=True)  # a killed one's
        child = self._spawn(str(int(run_id)), store, log_path, subprocess.DEVNULL, REPLAY_MODULE)
        self._children[child.pid] = child
        return child.pid

    @property
    def standby_pid(self) -> int | None:
        """The standby worker's pid while it waits for a run; None when there is none."""
        return self._standby[0].pid if self._standby is not None else None

    def reap(self) -> None:
        """Wait for the processes started here that have exited (``reap_children``, every
        backend's in this process) and forget this backend's exited children."""
        reap_children()
        for pid, child in list(self._children.items()):
            if child.returncode is not None or child.poll() is not None:
                del self._children[pid]

    def prepare(self, store: RunStore) -> None:
        """Have a standby worker ready for ``store`` (start one if there is none)."""
        if not self.standby:
            return
        if self._standby is not None:
            process, home = self._standby
            if process.poll() is None and home == store.home.resolve():
                return
            self.close()
        logs = store.home / "logs"
        logs.mkdir(exist_ok=True)
        process = self._spawn(STANDBY, store, logs / "standby.log", subprocess.PIPE)
        self._standby = (process, store.home.resolve())

    def close(self) -> None:
        """End the standby worker, if any (runs it already took are not affected)."""
        if self._standby is None:
            return
        process, _ = self._standby
        self._standby = None
        with contextlib.suppress(OSError):
            process.stdin.close()
        process.kill()  # no run yet: nothing to lose, and it may still be importing
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)  # else a later ``reap`` waits for it

    def _hand_over(self, run_id: int, store: RunStore) -> subprocess.Popen | None:
        """The standby worker, told to run ``run_id``; None if there is none ready for it."""
        if self._standby is None:
            return None
        process, home = self._standby
        if process.poll() is not None or home != store.home.resolve():
            self.close()
            return None
        self._standby = None
        try:
            process.stdin.write(f"{int(run_id)}\n".encode())
            process.stdin.close()
        except OSError:  # it died in between: the pipe is broken
            process.kill()
            process.wait()
            return None
        return process

    def _spawn(
        self, arg: str, store: RunStore, log_path: Path, stdin: int, module: str = WORKER_MODULE
    ) -> subprocess.Popen:
        """``python -m MODULE ARG`` in its own session, output to ``log_path``: appended to for
        a run's worker, a new log for a standby or a replay (its last line is its error)."""
        env = {**os.environ, "BN_LAB_HOME": str(store.home.resolve())}
        append = module == WORKER_MODULE and arg != STANDBY
        reap_children()
        with open(log_path, "ab" if append else "wb") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", module, arg],
                stdin=stdin,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal or a UI reload does not reach it
            )
        with _unreaped_lock:
            _unreaped[child.pid] = child
        return child

    def alive(self, handle: int) -> bool:
        child = self._children.get(handle)
        if child is not None:
            if child.poll() is None:
                return True
            del self._children[handle]  # reaped
            return False
        # A worker started by an earlier server process. After a restart its pid may belong
        # to an unrelated process now, so it only counts if it still is this run's worker.
        return self._adopted(handle) is not None

    def terminate(self, handle: int) -> None:
        process = self._process(handle)
        if process is not None:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                process.terminate()

    def kill(self, handle: int) -> None:
        process = self._process(handle)
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
        active = self._store.list_runs(STARTED) if self._store else []
        runs = [run for run in active if run.handle == pid]
        if not runs:
            return worker_process(pid)
        return next(filter(None, (worker_process(pid, run) for run in runs)), None)


def worker_process(pid: int, run: RunRecord | None = None) -> psutil.Process | None:
    """The process ``pid`` if it is a live bn_core worker (of ``run``, if given), else None.

    Live: it exists and is not a zombie. A worker: its command line holds ``-m
    bn_core.runs.execution.worker RUN_ID`` (or ``--standby``). Of ``run``: RUN_ID is ``run.id``,
    and the process was created before the worker wrote ``run.started_at`` (one created later
    only reuses the pid). A standby worker learnt its run id later, so for it only the time can
    tell: it counts once the run has a ``started_at``, which its worker writes. Processes that
    cannot be inspected (another user's) are not ours.
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
        if worker_args[:1] == [STANDBY]:
            if run.started_at is None:
                return None
        elif worker_args[:1] != [str(run.id)]:
            return None
        if run.started_at is not None and created > run.started_at + CLOCK_SLACK:
            return None
    return process


def _worker_args(args: list[str]) -> list[str] | None:
    """The arguments after ``-m bn_core.runs.execution.worker`` in ``args``, or None if absent."""
    for i in range(len(args) - 1):
        if args[i] == "-m" and args[i + 1] == WORKER_MODULE:
            return args[i + 2 :]
    return None
