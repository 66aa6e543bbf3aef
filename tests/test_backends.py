"""The ``Backend`` every execution backend subclasses: each method declared once, with a
default for those a backend may not need, and a runner that calls them all without asking
first whether a backend has them. No TensorFlow, no Ray, no processes: under a second."""

from __future__ import annotations

import inspect

import pytest

from bn_core.config import TrainConfig
from bn_core.runs.execution.backends import Backend
from bn_core.runs.execution.backends.local import LocalProcessBackend
from bn_core.runs.execution.backends.ray_backend import RayBackend
from bn_core.runs.execution.runner import JobRunner
from bn_core.runs.store.run_store import RunStore

OWN = {"start", "alive", "terminate", "kill"}  # every backend's own
DEFAULTED = {"capacity", "prepare", "close", "reap", "start_replay"}  # inherited when not needed
HANDLE_METHODS = ("alive", "terminate", "kill")


class Minimal(Backend):
    """A backend with only what it must have: no overrides of the defaulted methods."""

    def __init__(self):
        self.started: list[int] = []
        self.signals: list[tuple[str, int]] = []

    def start(self, run_id: int, store: RunStore) -> int:
        self.started.append(run_id)
        return 10**7 + run_id

    def alive(self, handle: int) -> bool:
        return True

    def terminate(self, handle: int) -> None:
        self.signals.append(("terminate", handle))

    def kill(self, handle: int) -> None:
        self.signals.append(("kill", handle))


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "home")


def test_the_protocol_declares_every_method_the_runner_calls():
    declared = {
        name
        for name, value in vars(Backend).items()
        if callable(value) and not name.startswith("_")
    }
    assert declared == OWN | DEFAULTED
    assert Backend.__abstractmethods__ == OWN
    assert Backend.runs_replays is False


@pytest.mark.parametrize("backend", [LocalProcessBackend, RayBackend])
def test_both_backends_implement_every_method(backend):
    assert issubclass(backend, Backend)
    assert not backend.__abstractmethods__  # nothing left to implement: it can be made
    for name in OWN | DEFAULTED:
        assert callable(getattr(backend, name)), name
    for name in OWN:
        assert getattr(backend, name) is not getattr(Backend, name), f"{name} is its own"
    for name in HANDLE_METHODS:
        assert [*inspect.signature(getattr(backend, name)).parameters] == ["self", "handle"]


def test_the_local_backend_runs_replays_and_ray_leaves_them_queued():
    assert LocalProcessBackend.runs_replays is True
    assert RayBackend.runs_replays is False
    assert RayBackend.start_replay is Backend.start_replay


def test_a_backend_without_its_own_methods_cannot_be_made():
    class Incomplete(Backend):
        def start(self, run_id: int, store: RunStore) -> int:
            return 1

    with pytest.raises(TypeError, match="alive"):
        Incomplete()


def test_the_defaults_say_no_limit_and_do_nothing(store):
    backend = Minimal()
    assert backend.capacity() is None
    assert backend.prepare(store) is None
    assert backend.close() is None
    with pytest.raises(NotImplementedError, match="Minimal runs no window replays"):
        backend.start_replay(1, store)


def test_a_minimal_backend_works_with_the_runner(store):
    """Every pass of the runner on a backend and a cluster that override nothing optional:
    local and cluster runs start (a cluster with no limit of its own gets the runner's),
    cancels escalate by handle, replays stay queued, stopping closes."""
    local, cluster = Minimal(), Minimal()
    runner = JobRunner(store, local, cluster=cluster, max_concurrent=2, cancel_grace=0.0)
    finished = store.create_run(TrainConfig(), "g")
    assert store.transition(finished, ("queued",), "completed", test_accuracy=0.5)
    here = runner.submit([TrainConfig(seed=1)])
    there = runner.submit([TrainConfig(seed=s) for s in (2, 3, 4)], backend="ray")
    assert runner.replay([finished]) == [finished]  # after the runs: it holds none back

    runner.tick()  # starts the local run, asks the cluster for its room in a thread
    runner._cluster_probe.join(timeout=30)
    runner.tick()  # the answer (None: no limit of its own) -> up to max_concurrent
    assert local.started == here
    assert cluster.started == there[:2]
    assert store.get(here[0]).handle == 10**7 + here[0]
    assert store.get(there[0]).handle == 10**7 + there[0]
    assert store.replay_jobs([finished])[finished].status == "queued"  # nobody runs it here

    store.transition(here[0], ("starting",), "running")
    runner.cancel(here[0])
    runner.tick()  # the cancel's grace begins (zero seconds here)
    runner.tick()  # past it: the backend is told, by handle
    assert local.signals and {handle for _, handle in local.signals} == {10**7 + here[0]}

    runner.start()
    runner.stop()  # close() on a backend that has nothing to close
