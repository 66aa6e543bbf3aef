"""The Ray backend's parts that need no cluster: settings, a wrong or silent address, how the
runner shares out runs between this machine and a cluster (with a stand-in cluster), what a
lost cluster does to queued runs, and that the default install never imports Ray."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bn_core.config import TrainConfig
from bn_core.runs.execution.backends import ray_cluster
from bn_core.runs.execution.backends.ray_backend import ClusterError, RayBackend, resources_from_env
from bn_core.runs.execution.reaper import dead
from bn_core.runs.execution.runner import Backend, JobRunner
from bn_core.runs.store import owner
from bn_core.runs.store.run_store import RunStore

ROOT = Path(__file__).resolve().parent.parent


class FakeCluster(Backend):
    """Stands in for a RayBackend: room for ``room`` runs; records what it was asked."""

    name = "ray"

    def __init__(self, room: int = 2, problem: str | None = None):
        self.room, self.problem = room, problem
        self.started: list[int] = []
        self.asked = 0
        self.signals: list[tuple[str, int]] = []

    def capacity(self) -> int:
        self.asked += 1
        if self.problem:
            raise ClusterError(self.problem)
        return self.room

    def start(self, run_id: int, store: RunStore) -> int:
        self.started.append(run_id)
        store.transition(run_id, ("starting",), "running", heartbeat=time.time())
        return 1000 + run_id

    def alive(self, handle: int) -> bool:
        return True

    def terminate(self, handle: int) -> None:
        self.signals.append(("terminate", handle))

    def kill(self, handle: int) -> None:
        self.signals.append(("kill", handle))


class IdleLocal(FakeCluster):
    """A local backend whose runs never start anything."""


def settle(runner: JobRunner) -> None:
    """Two passes, the cluster's answer in between (it is asked in a thread of its own)."""
    runner.tick()
    if runner._cluster_probe is not None:
        runner._cluster_probe.join(timeout=30)
    runner.tick()


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "home")


def test_resources_come_from_the_environment_and_bad_values_are_one_line(monkeypatch):
    monkeypatch.delenv("BN_LAB_RAY_CPUS", raising=False)
    monkeypatch.delenv("BN_LAB_RAY_GPUS", raising=False)
    assert resources_from_env() == (1.0, 0.0)
    monkeypatch.setenv("BN_LAB_RAY_CPUS", "2")
    monkeypatch.setenv("BN_LAB_RAY_GPUS", "0.5")
    assert resources_from_env() == (2.0, 0.5)
    backend = RayBackend("127.0.0.1:6379")
    assert (backend.num_cpus, backend.num_gpus, backend.address) == (2.0, 0.5, "127.0.0.1:6379")
    for name, value in (
        ("BN_LAB_RAY_CPUS", "0"),
        ("BN_LAB_RAY_CPUS", "two"),
        ("BN_LAB_RAY_GPUS", "-1"),
    ):
        monkeypatch.setenv(name, value)
        with pytest.raises(ClusterError) as caught:
            resources_from_env()
        assert name in str(caught.value) and "\n" not in str(caught.value)
        monkeypatch.setenv(name, "1")


def test_an_address_nobody_listens_at_fails_in_seconds_with_one_line():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    with pytest.raises(ClusterError) as caught:
        ray_cluster._reachable(f"127.0.0.1:{port}")
    assert time.perf_counter() - started < ray_cluster.CONNECT_SECONDS + 1
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in str(caught.value)
    for bad in ("localhost", "host:port", ":6379"):
        with pytest.raises(ClusterError, match="is not HOST:PORT"):
            ray_cluster._reachable(bad)


def test_ray_runs_go_to_the_cluster_up_to_its_room_beside_the_local_limit(store):
    local, cluster = IdleLocal(), FakeCluster(room=2)
    runner = JobRunner(store, local, max_concurrent=1, cluster=cluster)
    first_local = runner.submit([TrainConfig(seed=0), TrainConfig(seed=1)])
    on_ray = runner.submit([TrainConfig(seed=s) for s in range(3)], backend="ray")
    settle(runner)
    assert local.started == first_local[:1]  # this machine's limit: 1
    assert cluster.started == on_ray[:2]  # the cluster's room: 2, not held back by local runs
    assert {store.get(i).backend_name for i in on_ray} == {"ray"}
    assert store.get(on_ray[2]).status == "queued" and store.queued_for("ray") == 1
    assert store.get(on_ray[0]).pid == 1000 + on_ray[0]  # the backend's handle


def test_an_unreachable_cluster_leaves_its_runs_queued_says_why_once_and_they_can_move(
    store, capsys
):
    local, cluster = IdleLocal(), FakeCluster(problem="the Ray cluster at 10.0.0.5:6379 is gone")
    runner = JobRunner(store, local, max_concurrent=4, cluster=cluster)
    ids = runner.submit([TrainConfig(seed=s) for s in range(2)], backend="ray")
    settle(runner)
    settle(runner)  # within CLUSTER_RETRY: not asked again
    assert [store.get(i).status for i in ids] == ["queued", "queued"]
    assert runner.cluster_problem == "the Ray cluster at 10.0.0.5:6379 is gone"
    assert capsys.readouterr().err.count("is gone (2 runs wait for Ray)") == 1  # said once
    assert cluster.asked == 1
    assert store.move_queued("ray", "local") == 2
    runner.tick()
    assert local.started == ids and runner.cluster_problem is None


def test_a_cluster_run_is_judged_by_the_process_that_started_it_only(store):
    """The handle a Ray run keeps as its pid means something to its owner's backend only: a
    second runner (a CLI's) must not take it for a dead local process."""
    (run_id,) = store.create_runs([TrainConfig()], "g", backend="ray")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        other = owner.owner_of(sleeper.pid)
        store.transition(run_id, ("queued",), "running", owner=other, pid=4242)
        gone = IdleLocal()
        gone.alive = lambda pid: False  # any backend here would not know handle 4242
        assert not dead(store.get(run_id), gone)  # another live process's run
        store.update(run_id, owner=owner.current())  # this process's: its backend decides
        assert dead(store.get(run_id), gone)
    finally:
        sleeper.kill()
        sleeper.wait()
    store.update(run_id, owner=other)
    assert dead(store.get(run_id), gone)  # its owner is gone: dead whatever the backend says


def test_unknown_backends_are_refused_before_anything_is_queued(store):
    with pytest.raises(ValueError, match="unknown backend 'slurm'"):
        store.create_runs([TrainConfig()], "g", backend="slurm")
    assert store.list_runs() == []


def test_the_default_install_never_imports_ray(tmp_path):
    """No RAY_ADDRESS, no --backend: queueing and scheduling local runs imports no Ray."""
    code = (
        "import sys\n"
        "from bn_core.config import TrainConfig\n"
        "from bn_core.runs.execution.runner import Backend, JobRunner\n"
        "from bn_core.runs.store.run_store import RunStore\n"
        "from bn_core.cli.main import build_parser\n"
        "build_parser()\n"
        "class Idle(Backend):\n"
        "    def start(self, run_id, store): return 0\n"
        "    def alive(self, handle): return True\n"
        "    def terminate(self, handle): pass\n"
        "    kill = terminate\n"
        f"runner = JobRunner(RunStore({str(tmp_path / 'home')!r}), Idle(), max_concurrent=1)\n"
        "runner.submit([TrainConfig()])\n"
        "runner.tick()\n"
        "runner.cancel(runner.store.list_runs()[0].id)\n"
        "print('ray' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_a_machine_that_is_no_node_of_the_cluster_is_told_how_to_join(monkeypatch):
    """A Ray driver joins through a node of its own machine: without one, ray.init would
    retry for a minute; we say what to run instead."""
    monkeypatch.setattr(ray_cluster, "_raylet_here", lambda: False)
    with socket.socket() as listener:  # something answers at the address
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(ClusterError) as caught:
            ray_cluster.connect(address)
    message = str(caught.value)
    assert "is not a node of the Ray cluster" in message and "\n" not in message
    assert f"ray start --address={address} --num-cpus=0" in message


def test_a_runner_that_waits_for_its_own_runs_takes_no_other_cluster_run(store):
    """A run's relay lives in the process that claimed it: ``submit --wait`` leaves once its
    run ends, so it must not claim (and then orphan) runs others queued for the cluster."""
    cluster = FakeCluster(room=4)
    others = JobRunner(store, IdleLocal(), cluster=FakeCluster()).submit(
        [TrainConfig(seed=1)], backend="ray"
    )
    runner = JobRunner(store, IdleLocal(), cluster=cluster)
    (mine,) = runner.submit([TrainConfig(seed=2)], backend="ray")
    runner.cluster_claims = {mine}
    settle(runner)
    assert cluster.started == [mine]
    assert store.get(others[0]).status == "queued"  # left for the dashboard's runner


def test_the_compose_cluster_workers_hold_no_store_and_no_data():
    """`docker compose --profile cluster up`: the workers are Ray nodes only. They mount no
    volume (no run store, no datasets), publish no port, point BN_LAB_HOME at nothing, and
    exist only in the cluster profile (plain `docker compose up` starts no Ray)."""
    import yaml  # PyYAML: a dependency of ray[default]

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    worker, dashboard = services["ray-worker"], services["bn-lab"]
    assert worker["profiles"] == ["cluster"] and "profiles" not in dashboard
    assert "volumes" not in worker and "ports" not in worker
    assert worker["environment"]["BN_LAB_HOME"] == "/nonexistent"
    assert worker["command"] == "ray-worker" and worker["image"] == dashboard["image"]
    assert all(p.startswith("127.0.0.1:") for p in dashboard["ports"])  # Ray's ports: never
