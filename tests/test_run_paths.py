"""A run ends one way wherever it trains: a queued run on a local worker and a run of
``bn-lab study`` leave the same columns, metric rows and files in the store (the Ray path is
compared with a local worker in tests/test_ray_cluster.py, on the loopback cluster).

Both train for real (worker processes, a tiny synthetic MNIST file), so the comparison holds
for what the code does, not for what a fake returns.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bn_core.cli.study import _run_all
from bn_core.config import TrainConfig
from bn_core.runs.execution import JobRunner
from bn_core.runs.execution.recording import Outcome, end_run
from bn_core.runs.store import RunStore
from bn_core.vocabulary import RunStatus, Stage
from tests.helpers import run_footprint, write_npz


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> TrainConfig:
    folder = tmp_path_factory.mktemp("paths-data")
    write_npz(folder, n_train=400, n_test=64)
    return TrainConfig(
        variant="lenet_fc_bn2",
        data_dir=str(folder),
        val_size=64,
        train_limit=128,
        epochs=2,
        batch_size=32,
        probe_every=32,  # the probe at step 0 (8 steps in all)
    )


def test_a_worker_run_and_a_study_run_leave_the_same_fields_and_files(tmp_path, tiny_config):
    worker_store = RunStore(tmp_path / "worker")
    runner = JobRunner(worker_store, kind="test")
    try:
        (queued,) = runner.submit([tiny_config], group_id="g")
        runner.wait([queued], poll=0.2)
    finally:
        runner.stop()
    results, study_store, (studied,) = _run_all(
        [tiny_config], tmp_path / "study" / "store", "study-g", "A study"
    )
    by_worker = run_footprint(worker_store, queued)
    by_study = run_footprint(study_store, studied)
    assert by_worker == by_study
    assert by_worker["status"] == RunStatus.COMPLETED and by_worker["stage"] == Stage.SAVING
    assert by_worker["model_file"] and not by_worker["checkpoint_file"]  # replayable, settled
    for column in ("images_per_second", "test_accuracy", "test_loss", "node", "owner"):
        assert column in by_worker["filled"], column
    assert by_worker["epoch_rows"] == 2 and by_worker["probe_rows"] > 0
    assert [r["status"] for r in results] == [RunStatus.COMPLETED]
    assert Path(study_store.home).name == "store"


# -- end_run on its own (no training) -----------------------------------------------------------


def _running(store: RunStore, holder: str) -> int:
    """A run that ``holder`` owns and is training (as a worker's claim leaves it)."""
    (run_id,) = store.create_runs([TrainConfig()], "g")
    store.transition(run_id, (RunStatus.QUEUED,), RunStatus.RUNNING, owner=holder, heartbeat=1.0)
    return run_id


def test_a_model_that_cannot_be_saved_still_ends_the_run_failed_saying_why(tmp_path):
    """Keras refusing to save (any exception, not only an OSError) must not leave the run
    running for a runner to call lost: it ends failed with the reason."""
    store = RunStore(tmp_path / "home")
    run_id = _running(store, "me")

    def refuse(path):
        raise ValueError("Unable to serialize layer\nwith a second line")

    outcome = Outcome(RunStatus.COMPLETED, test_accuracy=0.9, write_model=refuse)
    assert end_run(store, run_id, "me", outcome) == RunStatus.FAILED
    run = store.get(run_id)
    assert run.status == RunStatus.FAILED
    assert run.error == "could not save its model: Unable to serialize layer"


def test_a_stale_attempt_leaves_the_new_attempts_files_alone(tmp_path):
    """An attempt that lost its run (judged dead, resumed by another) neither removes the
    checkpoint nor replaces the model of the attempt that has the run now."""
    store = RunStore(tmp_path / "home")
    run_id = _running(store, "new")
    checkpoint = store.checkpoint_path(run_id)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(b"the new attempt's")
    written = []
    outcome = Outcome(RunStatus.COMPLETED, write_model=written.append)
    end_run(store, run_id, "old", outcome)
    assert checkpoint.read_bytes() == b"the new attempt's" and written == []
    assert store.get(run_id).status == RunStatus.RUNNING  # still the new attempt's


def test_a_full_disk_is_said_as_the_stores_only_for_an_attempt_on_its_machine(tmp_path):
    store = RunStore(tmp_path / "home")
    error = "[Errno 28] No space left on device: '/tmp/bn-lab-run-3/checkpoint.npz'"
    here = Outcome(RunStatus.FAILED, error).on_this_disk(store)
    assert here.error.startswith("disk full (") and str(store.home) in here.error
    on_a_node = Outcome(RunStatus.FAILED, f"on Ray: {error}")  # the node's disk, not ours
    assert on_a_node.fields()["error"] == f"on Ray: {error}"


def test_a_study_runs_only_its_own_runs(tmp_path, tiny_config):
    """A run an earlier study left queued in the same store is not started by the next."""
    home = tmp_path / "study" / "store"
    (left,) = RunStore(home).create_runs([tiny_config], "an-earlier-study")
    _, store, (mine,) = _run_all([tiny_config], home, "study-g", "A study")
    assert store.get(mine).status == RunStatus.COMPLETED
    assert store.get(left).status == RunStatus.QUEUED
