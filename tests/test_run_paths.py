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
