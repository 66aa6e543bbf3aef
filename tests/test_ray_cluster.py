"""The Ray backend on a real multi-node cluster on this machine (``ray.cluster_utils.Cluster``):
a head with no CPUs (nothing runs there: it is the dashboard's machine) and two worker nodes,
every address on loopback. The worker nodes' processes get a ``BN_LAB_HOME`` that does not
exist, so a run that completes proves the workers never open the store; the data reaches them
through Ray's object store only.

The tests share one cluster (about 10 s to start) and run in file order: the last one kills a
worker node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# Before Ray is imported: it reads this at import time. With it, and every node on 127.0.0.1,
# the cluster advertises only the loopback address (nothing leaves this machine).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from bn_core.runs.execution.backends.ray_backend import RayBackend  # noqa: E402
from bn_core.runs.execution.runner import JobRunner  # noqa: E402
from bn_core.runs.store.run_store import RunStore  # noqa: E402
from tests.runner_helpers import long_config, quick_config, wait_for, write_mnist  # noqa: E402

pytestmark = pytest.mark.ray
NOWHERE = "/nonexistent/bn-lab-home"  # the worker nodes' BN_LAB_HOME
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster():
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1"}
    )
    saved = os.environ.get("BN_LAB_HOME")
    os.environ["BN_LAB_HOME"] = NOWHERE  # inherited by the worker nodes' processes only
    try:
        workers = [cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1") for _ in range(2)]
    finally:
        if saved is None:
            os.environ.pop("BN_LAB_HOME")
        else:
            os.environ["BN_LAB_HOME"] = saved
    cluster.wait_for_nodes()
    cluster.workers = workers
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def backend(cluster):
    backend = RayBackend(cluster.address)
    backend.connect()
    return backend


@pytest.fixture
def runner(tmp_path, backend):
    runner = JobRunner(RunStore(tmp_path / "home"), cluster=backend, cancel_grace=3.0)
    yield runner
    runner.stop()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_mnist(tmp_path_factory.mktemp("data"), n_train=800)


def worker_ids(cluster) -> set[str]:
    return {node.node_id for node in cluster.workers if node.all_processes}


def ended(store: RunStore, run_id: int):
    """The run once it has ended, else None."""
    run = store.get(run_id)
    return run if not run.active else None


def test_runs_complete_on_the_worker_nodes_once_each_with_their_metrics_in_order(
    cluster, backend, runner, data
):
    assert not Path(NOWHERE).exists()
    configs = [
        quick_config(data, seed=s, epochs=2, train_limit=640, probe_every=32) for s in range(3)
    ]
    ids = runner.submit(configs, group_name="on ray", backend="ray")
    runs = runner.wait(ids)
    store = runner.store
    assert [run.status for run in runs] == ["completed"] * 3, [run.error for run in runs]
    stats = backend.relay_stats()
    for run in runs:
        assert run.backend == "ray" and run.node and run.test_accuracy is not None
        assert run.images_per_second and run.images_per_second > 0
        assert stats[run.id]["node_id"] in worker_ids(cluster)  # never the head
        assert stats[run.id]["starts"] == 1  # Ray never retried it
        steps = [row["step"] for row in store.batch_metrics([run.id])]
        assert steps == sorted(set(steps)) and steps[-1] == run.total_steps
        assert [row["epoch"] for row in store.epoch_metrics([run.id])] == [1, 2]
        assert store.probe_rows([run.id])  # probes stream too
        assert store.model_path(run.id).is_file()  # the trained model came back as bytes
        assert not store.checkpoint_path(run.id).exists()  # completed: nothing to resume
    assert len({stats[i]["node_id"] for i in ids}) == 2  # both nodes took runs
    # Each event reached the store soon after the task yielded it (live charts).
    assert max(stats[i]["lag_max"] for i in ids) < 2.0


def test_a_run_on_the_cluster_computes_what_it_computes_locally(tmp_path, runner, data):
    """Same seed, same maths: the relay changes where a run executes, not what it measures."""
    from bn_core.nn.training import EngineOptions, train
    from bn_core.runs.execution.worker import LIVE_EVENTS_PER_EPOCH

    config = quick_config(data, seed=7, epochs=2)
    (run_id,) = runner.submit([config], backend="ray")
    (run,) = runner.wait([run_id])
    assert run.status == "completed", run.error
    local = train(config, options=EngineOptions(min_events_per_epoch=LIVE_EVENTS_PER_EPOCH))
    remote = runner.store.epoch_metrics([run_id])
    np.testing.assert_allclose(
        [row["loss"] for row in remote], local.history["loss"], rtol=1e-4, atol=1e-5
    )
    assert run.test_accuracy == pytest.approx(local.test_accuracy, abs=0.02)


def test_a_run_on_the_cluster_leaves_the_fields_and_files_a_local_worker_leaves(
    tmp_path, runner, data
):
    """One end-of-run path (recording.end_run): the Ray relay fills the same columns, metric
    rows and files as a local worker for the same config (tests/test_run_paths.py compares
    the worker with ``bn-lab study``)."""
    from tests.helpers import run_footprint

    config = quick_config(data, seed=3, epochs=2, probe_every=32)
    (on_ray,) = runner.submit([config], backend="ray")
    local_runner = JobRunner(RunStore(tmp_path / "local"), kind="test")
    try:
        (here,) = local_runner.submit([config])
        local_runner.wait([here], poll=0.2)
    finally:
        local_runner.stop()
    (run,) = runner.wait([on_ray])
    assert run.status == "completed", run.error
    remote, local = run_footprint(runner.store, on_ray), run_footprint(local_runner.store, here)
    assert remote == local
    assert remote["model_file"] and not remote["checkpoint_file"]
    assert "images_per_second" in remote["filled"]


def test_cancel_stops_the_task_and_keeps_what_it_measured(runner, data):
    (run_id,) = runner.submit([long_config(data)], backend="ray")
    runner.start()
    store = runner.store
    wait_for(
        lambda: len(store.batch_metrics([run_id])) >= 3, "the run's first batches", timeout=120
    )
    runner.cancel(run_id)
    run = wait_for(lambda: ended(store, run_id), "the run to end", timeout=60)
    assert run.status == "cancelled", run.error
    assert store.batch_metrics([run_id])  # every metric received is kept
    assert store.model_path(run_id).is_file()  # stopped cleanly (the cooperative flag)


def test_submit_with_no_cluster_answering_is_one_line_and_queues_nothing(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "BN_LAB_HOME": str(home), "RAY_ADDRESS": "127.0.0.1:9"}
    args = [sys.executable, "-m", "bn_core", "submit", "--backend", "ray", "--epochs", "1"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Ray cluster answers at 127.0.0.1:9" in lines[0], lines
    assert "Traceback" not in done.stderr
    assert not (home / "runs.sqlite").exists() or RunStore(home).list_runs() == []
    env["RAY_ADDRESS"] = "not an address"
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and "is not HOST:PORT" in done.stderr, done.stderr


def test_cli_submit_wait_runs_on_the_cluster(tmp_path, cluster, data):
    env = {**os.environ, "BN_LAB_HOME": str(tmp_path / "home"), "RAY_ADDRESS": cluster.address}
    args = [sys.executable, "-m", "bn_core", "submit", "--data-dir", str(data), "--epochs", "1"]
    args += ["--train-limit", "64", "--val-size", "100", "--batch-size", "32", "--wait", "--json"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert (row["status"], row["backend"]) == ("completed", "ray"), row
    assert row["node"] and row["images_per_second"] > 0


def test_a_study_on_the_cluster_writes_its_report(tmp_path, backend, data, capsys):
    """``bn-lab study --backend ray``: every run of the grid at once on the cluster, recorded
    in the study's own store, then the same report and tables as a study in one process."""
    from bn_core.cli.study import cmd_study

    configs = [quick_config(data, variant=v) for v in ("lenet", "lenet_bn1")]
    out = tmp_path / "out"
    out.mkdir()
    assert cmd_study("original", configs, out, cluster=backend) == 0
    assert (out / "report.html").is_file() and (out / "summary.csv").is_file()
    results = json.loads((out / "results.json").read_text())
    assert [(r["variant"], r["status"]) for r in results] == [
        ("lenet", "completed"),
        ("lenet_bn1", "completed"),
    ]
    assert all(len(r["history"]["loss"]) == 1 for r in results)
    runs = RunStore(out / "store").list_runs()
    assert {(run.backend, run.status) for run in runs} == {("ray", "completed")}
    assert "2 runs queued on the Ray cluster" in capsys.readouterr().err


def test_a_lost_node_interrupts_its_run_keeping_its_metrics_and_resume_continues_it(
    cluster, backend, runner, data
):
    """Kill the node of one run mid-run: that run ends ``interrupted`` naming the node, with
    every metric received kept, while the other node's run completes; resuming the first
    continues from its last checkpoint (it came back as bytes) on the node that is left."""
    store = runner.store
    doomed_config = quick_config(data, seed=1, epochs=4, train_limit=768)
    other_config = quick_config(data, seed=2, epochs=3, train_limit=384)
    doomed, other = runner.submit([doomed_config, other_config], backend="ray")
    runner.start()
    wait_for(
        lambda: store.checkpoint_path(doomed).exists(), "the first epoch's checkpoint", timeout=180
    )
    node_id = backend.relay_stats()[doomed]["node_id"]
    (node,) = [n for n in cluster.workers if n.node_id == node_id]
    kept = len(store.batch_metrics([doomed]))
    cluster.remove_node(node, allow_graceful=False)
    run = wait_for(lambda: ended(store, doomed), "the run to end", timeout=120)
    assert run.status == "interrupted", run.error
    assert "Ray node" in run.error and "was lost" in run.error and node_id[:12] in run.error
    assert len(store.batch_metrics([doomed])) >= kept  # nothing received is lost
    done_other = runner.wait([other])[0]
    assert done_other.status == "completed", done_other.error

    print(runner.resume(doomed))
    (resumed,) = runner.wait([doomed])
    assert resumed.status == "completed", resumed.error
    assert resumed.resumes == 1
    assert [row["epoch"] for row in store.epoch_metrics([doomed])] == [1, 2, 3, 4]
    cluster.workers = [n for n in cluster.workers if n is not node]
