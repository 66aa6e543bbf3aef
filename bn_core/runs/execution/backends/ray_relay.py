"""The relay of one run on a Ray cluster, a thread in the dashboard's process: it submits the
run's task (``ray_task.train_events``), records every event the task yields with the
worker's own code (``recording.record_event``), writes the checkpoints it sends, beats the
run's heartbeat, and ends the run through ``recording.end_run`` like every other run. Ray's
errors are mapped by class: a lost node, worker or object ends the run ``interrupted``
(naming the node), an error in the task ``failed`` with its first line.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

from bn_core.atomic import atomic_path
from bn_core.data.files import DatasetError
from bn_core.messages import one_line
from bn_core.runs.execution.backends.ray_cluster import ClusterError, lost_errors
from bn_core.runs.execution.recording import (
    HEARTBEAT_SECONDS,
    Outcome,
    Resumed,
    end_run,
    heartbeat,
    record_event,
)
from bn_core.runs.store import owner
from bn_core.runs.store.errors import StoreError
from bn_core.runs.store.run_store import RunStore
from bn_core.vocabulary import Event, RunStatus, Stage

if TYPE_CHECKING:
    from bn_core.runs.execution.backends.ray_backend import RayBackend


class Relay:
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
        self.model: bytes | None = None  # the trained model's .keras file, once it came
        self.thread = threading.Thread(target=self._run, name=f"bn-lab-ray-{run_id}", daemon=True)

    def start(self) -> None:
        # The run becomes this relay's (a resumed run's new attempt is another owner), and it
        # waits for a node as "running" with a heartbeat: a busy cluster may take a while.
        if not self.store.transition(
            self.run_id,
            (RunStatus.STARTING,),
            RunStatus.RUNNING,
            owner=self.holder,
            heartbeat=time.time(),
            stage=Stage.WAITING,
            node=None,
        ):  # cancelled meanwhile, or taken by another runner: not ours to start
            raise ClusterError(f"run #{self.run_id} is no longer waiting to start")
        self.thread.start()

    def _run(self) -> None:
        stop, ended = threading.Event(), threading.Event()
        with heartbeat(self.store, self.run_id, self.holder, stop):
            flagger = threading.Thread(target=self._flag_when, args=(stop, ended), daemon=True)
            flagger.start()
            finished = False
            try:
                outcome = self._relay()
                finished = True
            except StoreError as exc:  # the store cannot record it: stop the task, say why
                outcome = Outcome.failed(str(exc))
            except ConnectionError as exc:  # Ray's connection to the cluster (an OSError)
                outcome = self._ended(exc)
            except OSError as exc:  # writing its checkpoint here
                outcome = Outcome.failed(exc, self.store)
            except DatasetError as exc:  # read here, before any task: as a local run says it
                outcome = Outcome.failed(str(exc))
            except Exception as exc:  # noqa: BLE001 - Ray's errors: see _ended
                outcome = self._ended(exc)
            finally:
                ended.set()
                if not finished and self.generator is not None:
                    self._stop_task()  # no one records it any more: free its node now
            if self.model is not None and outcome.write_model is None:
                outcome.write_model = self._write_model
            end_run(self.store, self.run_id, self.holder, outcome)
            self.model = None  # saved: the relay outlives its run (relay_stats), its bytes not
        with contextlib.suppress(Exception):
            self.backend._cancels.forget.remote(self.token)

    def _relay(self) -> Outcome:
        ray, store, run_id = self.backend._ray, self.store, self.run_id
        run = store.get(run_id)
        if run is None:
            return Outcome.failed(f"run #{run_id} is damaged in the store")
        checkpoint_path = store.checkpoint_path(run_id)
        saved = checkpoint_path.read_bytes() if checkpoint_path.exists() else None
        raw = self.backend.dataset(run.config.dataset, run.config.data_dir)
        if store.cancel_requested(run_id):  # while its data was read: no task at all
            return Outcome(RunStatus.CANCELLED, "cancelled before it started on a node")
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
        done: dict = {"status": RunStatus.FAILED, "error": "the Ray task ended without its result"}
        for ref in self.generator:
            event = ray.get(ref)
            kind = event["type"]
            if kind == Event.NODE:
                self.starts += 1
                self.on_node = now = time.time()
                self.node = (event["node"], event["node_id"])
                store.update(run_id, node=event["node"], started_at=now, stage=Stage.STARTING)
            elif kind == Event.RESTART:
                resumed.pending = True
                checkpoint_path.unlink(missing_ok=True)
            elif kind == Event.CHECKPOINT:
                with atomic_path(checkpoint_path, suffix=".npz") as tmp:
                    tmp.write_bytes(event["data"])
            elif kind == Event.MODEL:
                self.model = event["data"]  # end_run saves it, as a local worker's model
            elif kind == Event.DONE:
                done = event
            elif kind != Event.END:
                sent = event.pop("sent", None)
                resumed.on_event(event)
                record_event(store, run_id, event)
                if sent is not None:  # clocks of one machine in tests; NTP-close on a cluster
                    self.lags.append(time.time() - sent)
        return Outcome(
            status=done["status"],
            error=done.get("error"),
            test_loss=done.get("test_loss"),
            test_accuracy=done.get("test_accuracy"),
            images_per_second=done.get("images_per_second"),
            write_model=self._write_model if self.model is not None else None,
        )

    def _write_model(self, path) -> None:
        with atomic_path(path, suffix=".keras") as tmp:
            tmp.write_bytes(self.model)

    def _ended(self, exc: Exception) -> Outcome:
        """How a run whose task raised ``exc`` ended."""
        errors = self.backend._ray.exceptions
        cancel = self.store.cancel_requested(self.run_id)
        if isinstance(exc, errors.TaskCancelledError) or (self.escalated and cancel):
            status = RunStatus.CANCELLED if cancel else RunStatus.INTERRUPTED
            return Outcome(status, "the Ray task was cancelled; metrics up to then are kept")
        if isinstance(exc, (*lost_errors(self.backend._ray), ConnectionError)):
            if self.node is not None:
                where = f"the Ray node {self.node[0]} (node id {self.node[1][:12]}) was lost"
            else:
                where = f"the Ray cluster at {self.backend.address} was lost"
            return Outcome(RunStatus.INTERRUPTED, f"{where}; metrics up to then are kept")
        return Outcome(RunStatus.FAILED, f"on Ray: {one_line(exc)}")

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
