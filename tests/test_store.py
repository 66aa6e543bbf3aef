"""Tests for bn_core.runs.store.run_store: runs, statuses and metrics in one SQLite file.

Pure Python (no TensorFlow, no worker processes); one test starts a small writer process to
check that readers and a writer in another process never get in each other's way.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from bn_core.analysis.summary import SUMMARY_COLUMNS, summary_table
from bn_core.config import ConfigError, TrainConfig
from bn_core.results import HISTORY_KEYS
from bn_core.runs.store import schema
from bn_core.runs.store.run_store import RunRecord, RunStore
from bn_core.vocabulary import ACTIVE, FINISHED, STATUSES


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "home")


def batch(step: int, loss: float = 1.0, *, steps_per_epoch: int = 10) -> dict:
    epoch, index = divmod(step - 1, steps_per_epoch)
    return {
        "type": "batch",  # extra keys (as the training events carry) are ignored
        "step": step,
        "epoch": epoch + 1,
        "batch": index + 1,
        "epoch_progress": epoch + (index + 1) / steps_per_epoch,
        "loss": loss,
        "accuracy": 0.5,
    }


def epoch_row(epoch: int, val_accuracy: float = 0.5, **overrides) -> dict:
    return {
        "type": "epoch",
        "epoch": epoch,
        "step": 10 * epoch,
        "loss": 1.0 / epoch,
        "accuracy": 0.5,
        "val_loss": 1.1 / epoch,
        "val_accuracy": val_accuracy,
        "seconds": 2.0,
        "images_per_second": 1000.0 * epoch,
        **overrides,
    }


def finish(store: RunStore, run_id: int, status: str = "completed", **fields) -> None:
    """Walk a run through the normal lifecycle to a final status."""
    assert store.transition(run_id, ("queued",), "starting")
    assert store.transition(run_id, ("starting",), "running", started_at=time.time())
    assert store.transition(run_id, ("running",), status, finished_at=time.time(), **fields)


# -- runs ---------------------------------------------------------------------------------------


def test_statuses_partition():
    assert set(ACTIVE) | set(FINISHED) == set(STATUSES)
    assert not set(ACTIVE) & set(FINISHED)


def test_create_get_and_list_in_creation_order(store):
    a = store.create_run(TrainConfig(variant="lenet", seed=3), "g1")
    b = store.create_run(TrainConfig(variant="lenet_fc_bn2", seed=4), "g1")
    c = store.create_run(TrainConfig(variant="lenet", seed=5), "g2")
    assert a < b < c

    run = store.get(b)
    assert isinstance(run, RunRecord)
    assert (run.id, run.group_id, run.variant, run.seed) == (b, "g1", "lenet_fc_bn2", 4)
    assert run.status == "queued" and run.active
    assert run.cancel_requested is False
    assert run.pid is None and run.started_at is None and run.finished_at is None
    assert run.heartbeat is None and run.error is None and run.test_accuracy is None
    assert abs(run.created_at - time.time()) < 60
    assert store.get(c + 100) is None

    assert [r.id for r in store.list_runs()] == [a, b, c]
    assert [r.id for r in store.list_runs(group_id="g1")] == [a, b]
    assert [r.id for r in store.list_runs(group_id="g2")] == [c]
    assert store.list_runs(group_id="nope") == []

    store.transition(b, ("queued",), "starting")
    assert [r.id for r in store.list_runs(("queued",))] == [a, c]
    assert [r.id for r in store.list_runs(("starting", "running"))] == [b]
    assert [r.id for r in store.list_runs(("queued", "starting"))] == [a, b, c]
    assert [r.id for r in store.list_runs(("queued",), group_id="g1")] == [a]
    assert store.list_runs(("completed",)) == []


def test_config_json_round_trip(store):
    config = TrainConfig(
        variant="lenet_fc_bn2",
        dataset="fashion_mnist",
        data_dir="/some/folder with spaces/é",
        epochs=7,
        batch_size=33,
        optimizer="sgd",
        learning_rate=0.0123,
        epsilon=1e-5,
        window_size=3,
        activation="relu",
        seed=12345,
        val_size=0,
        train_limit=999,
    )
    run_id = store.create_run(config, "g")
    run = store.get(run_id)
    assert run.config == config
    assert isinstance(run.config, TrainConfig)
    assert run.config.learning_rate == 0.0123 and run.config.train_limit == 999
    assert store.list_runs()[0].config == config
    # Stored as readable JSON text, not an opaque blob.
    with sqlite3.connect(store.path) as db:
        text, kind = db.execute(
            "SELECT config_json, typeof(config_json) FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
    assert kind == "text"
    assert json.loads(text) == config.to_dict()


def test_create_run_refuses_invalid_config(store):
    with pytest.raises(ConfigError, match="epochs"):
        store.create_run(TrainConfig(epochs=0), "g")
    assert store.list_runs() == []


def test_transition_is_compare_and_set(store):
    run_id = store.create_run(TrainConfig(), "g")
    assert store.transition(run_id, ("queued",), "starting", heartbeat=123.0)
    # A second claim of the same queued run fails and changes nothing.
    assert not store.transition(run_id, ("queued",), "starting", heartbeat=456.0)
    run = store.get(run_id)
    assert run.status == "starting" and run.heartbeat == 123.0

    assert store.transition(run_id, ("queued", "starting"), "running", pid=4242, started_at=1.5)
    run = store.get(run_id)
    assert (run.status, run.pid, run.started_at) == ("running", 4242, 1.5)

    assert store.transition(run_id, ("running",), "completed", finished_at=2.5, test_accuracy=0.9)
    # A finished run cannot be started, claimed or ended again.
    assert not store.transition(run_id, ("queued", "starting"), "running", pid=1)
    assert not store.transition(run_id, ("queued",), "starting")
    assert not store.transition(run_id, ("starting", "running"), "interrupted", error="x")
    run = store.get(run_id)
    assert (run.status, run.pid, run.error, run.test_accuracy) == ("completed", 4242, None, 0.9)
    assert run.finished_at == 2.5 and not run.active

    assert not store.transition(run_id + 1, ("queued",), "starting")  # no such run


def test_transition_rejects_unknown_status(store):
    run_id = store.create_run(TrainConfig(), "g")
    with pytest.raises(ValueError, match="'exploded' is not a run status"):
        store.transition(run_id, ("queued",), "exploded")
    with pytest.raises(ValueError, match="'bogus' is not a run status"):
        store.transition(run_id, ("bogus",), "running")  # the expected ones are checked too
    assert store.get(run_id).status == "queued"


def test_concurrent_claims_exactly_one_wins(store):
    run_id = store.create_run(TrainConfig(), "g")
    barrier = threading.Barrier(8)
    wins = []

    def claim():
        barrier.wait()
        wins.append(RunStore(store.home).transition(run_id, ("queued",), "starting"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(wins) == [False] * 7 + [True]


def test_update_sets_columns_without_touching_status(store):
    run_id = store.create_run(TrainConfig(), "g")
    other = store.create_run(TrainConfig(), "g")
    store.update(run_id, pid=99, heartbeat=10.0, data_source="npz file x", steps_per_epoch=5)
    store.update(run_id, total_steps=50)
    run = store.get(run_id)
    assert run.status == "queued"
    assert (run.pid, run.heartbeat, run.data_source) == (99, 10.0, "npz file x")
    assert (run.steps_per_epoch, run.total_steps) == (5, 50)
    untouched = store.get(other)
    assert untouched.pid is None and untouched.heartbeat is None


def test_stage_is_none_until_a_worker_writes_one(store):
    run_id = store.create_run(TrainConfig(), "g")
    assert store.get(run_id).stage is None
    store.update(run_id, stage="compiling")
    assert store.get(run_id).stage == "compiling" and store.get(run_id).status == "queued"
    assert [r.stage for r in store.list_runs()] == ["compiling"]


def test_a_store_made_before_the_stage_column_gets_it_and_keeps_its_runs(tmp_path):
    home = tmp_path / "old"
    old = RunStore(home)
    run_id = old.create_run(TrainConfig(seed=3), "g")
    old.add_batch(run_id, batch(1))
    with schema.connect(old.path) as db:  # the runs table as stores made it before the column
        db.execute("ALTER TABLE runs DROP COLUMN stage")
        db.execute("PRAGMA user_version = 0")  # stores had no version then
        assert "stage" not in {row["name"] for row in db.execute("PRAGMA table_info(runs)")}

    store = RunStore(home)  # opening it adds what is missing
    run = store.get(run_id)
    assert (run.seed, run.stage) == (3, None)
    assert len(store.batch_metrics([run_id])) == 1
    store.update(run_id, stage="loading data")
    assert store.get(run_id).stage == "loading data"
    RunStore(home)  # and opening it again changes nothing
    assert store.get(run_id).stage == "loading data"


def test_cancel_flag(store):
    run_id = store.create_run(TrainConfig(), "g")
    other = store.create_run(TrainConfig(), "g")
    assert store.cancel_requested(run_id) is False
    store.request_cancel(run_id)
    assert store.cancel_requested(run_id) is True
    assert store.get(run_id).cancel_requested is True
    assert store.get(run_id).status == "queued"  # only a flag: the status is the runner's job
    assert store.cancel_requested(other) is False
    assert store.cancel_requested(other + 100) is False  # unknown run


def test_latest_group(store):
    assert store.latest_group() is None
    store.create_run(TrainConfig(), "first")
    assert store.latest_group() == "first"
    store.create_run(TrainConfig(), "second")
    store.create_run(TrainConfig(), "second")
    assert store.latest_group() == "second"


# -- metrics ------------------------------------------------------------------------------------


def test_batch_and_epoch_metrics_are_ordered(store):
    a = store.create_run(TrainConfig(), "g")
    b = store.create_run(TrainConfig(), "g")
    for step in (3, 1, 2):
        store.add_batch(a, batch(step, loss=float(step)))
    store.add_batch(b, batch(1, loss=10.0))
    for epoch in (2, 1):
        store.add_epoch(a, epoch_row(epoch))
    store.add_epoch(b, epoch_row(1))

    rows = store.batch_metrics([a])
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert [r["loss"] for r in rows] == [1.0, 2.0, 3.0]
    assert set(rows[0]) == {
        "run_id",
        "step",
        "epoch",
        "batch",
        "epoch_progress",
        "loss",
        "accuracy",
        "t",
    }
    assert all(r["run_id"] == a for r in rows)
    # Several runs: by run, then by step, whatever order the ids are asked in.
    both = store.batch_metrics([b, a])
    assert [(r["run_id"], r["step"]) for r in both] == [(a, 1), (a, 2), (a, 3), (b, 1)]

    epochs = store.epoch_metrics([a])
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert epochs[1]["images_per_second"] == 2000.0
    assert [(r["run_id"], r["epoch"]) for r in store.epoch_metrics([a, b])] == [
        (a, 1),
        (a, 2),
        (b, 1),
    ]
    assert store.batch_metrics([]) == [] and store.epoch_metrics([]) == []
    assert store.batch_metrics([b + 100]) == []


def test_metrics_replace_on_same_step(store):
    run_id = store.create_run(TrainConfig(), "g")
    store.add_batch(run_id, batch(1, loss=5.0))
    store.add_batch(run_id, batch(1, loss=4.0))
    store.add_batch(run_id, batch(2, loss=3.0))
    store.add_epoch(run_id, epoch_row(1, val_accuracy=0.1))
    store.add_epoch(run_id, epoch_row(1, val_accuracy=0.2))
    assert [(r["step"], r["loss"]) for r in store.batch_metrics([run_id])] == [(1, 4.0), (2, 3.0)]
    epochs = store.epoch_metrics([run_id])
    assert len(epochs) == 1 and epochs[0]["val_accuracy"] == 0.2


def test_metrics_keep_none_values(store):
    run_id = store.create_run(TrainConfig(), "g")
    store.add_batch(run_id, batch(1) | {"loss": None, "accuracy": None})  # a diverged step
    store.add_epoch(run_id, epoch_row(1, val_loss=None, val_accuracy=None))
    assert store.batch_metrics([run_id])[0]["loss"] is None
    assert store.epoch_metrics([run_id])[0]["val_accuracy"] is None


def test_add_batch_and_add_epoch_update_heartbeat(store):
    run_id = store.create_run(TrainConfig(), "g")
    other = store.create_run(TrainConfig(), "g")
    assert store.get(run_id).heartbeat is None
    before = time.time()
    store.add_batch(run_id, batch(1))
    beat = store.get(run_id).heartbeat
    assert beat is not None and before - 1 <= beat <= time.time() + 1
    assert store.batch_metrics([run_id])[0]["t"] == beat

    store.update(run_id, heartbeat=0.0)
    store.add_epoch(run_id, epoch_row(1))
    assert store.get(run_id).heartbeat >= before - 1
    assert store.get(other).heartbeat is None


def test_delete_refuses_active_runs(store):
    ids = {status: store.create_run(TrainConfig(), "g") for status in ACTIVE}
    store.transition(ids["starting"], ("queued",), "starting")
    store.transition(ids["running"], ("queued",), "running")
    for status, run_id in ids.items():
        store.add_batch(run_id, batch(1))
        assert not store.delete(run_id), status
        assert store.get(run_id).status == status
        assert len(store.batch_metrics([run_id])) == 1


@pytest.mark.parametrize("final", FINISHED)
def test_delete_removes_finished_run_and_its_metrics(store, final):
    keep = store.create_run(TrainConfig(), "g")
    gone = store.create_run(TrainConfig(), "g")
    for run_id in (keep, gone):
        store.add_batch(run_id, batch(1))
        store.add_batch(run_id, batch(2))
        store.add_epoch(run_id, epoch_row(1))
    finish(store, gone, final)

    assert store.delete(gone)
    assert store.get(gone) is None
    assert store.batch_metrics([gone]) == [] and store.epoch_metrics([gone]) == []
    with sqlite3.connect(store.path) as db:  # no orphan rows left behind (ON DELETE CASCADE)
        for table in ("batch_metrics", "epoch_metrics"):
            n = db.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (gone,)).fetchone()
            assert n[0] == 0, table
    assert not store.delete(gone)  # already gone
    # The other run is untouched.
    assert store.get(keep) is not None
    assert len(store.batch_metrics([keep])) == 2 and len(store.epoch_metrics([keep])) == 1


def test_result_dict_feeds_summary_table(store):
    base = store.create_run(TrainConfig(variant="lenet"), "g")
    bn = store.create_run(TrainConfig(variant="lenet_fc_bn2"), "g")
    for epoch, acc in ((1, 0.5), (2, 0.8)):
        store.add_epoch(base, epoch_row(epoch, val_accuracy=acc))
    for epoch, acc in ((1, 0.85), (2, 0.9)):
        store.add_epoch(bn, epoch_row(epoch, val_accuracy=acc))
    finish(store, base, test_accuracy=0.81, test_loss=0.6)
    finish(store, bn, "cancelled", error="cancelled after epoch 2")

    results = [store.result_dict(run) for run in store.list_runs()]
    first = results[0]
    assert set(first) >= {
        "variant",
        "status",
        "test_accuracy",
        "test_loss",
        "error",
        "history",
        "config",
    }
    assert first["run_id"] == base and first["variant"] == "lenet"
    assert first["status"] == "completed" and first["test_accuracy"] == 0.81
    assert set(first["history"]) == set(HISTORY_KEYS)
    assert first["history"]["val_accuracy"] == [0.5, 0.8]
    assert first["history"]["images_per_second"] == [1000.0, 2000.0]
    assert first["config"] == TrainConfig(variant="lenet").to_dict()
    assert results[1]["error"] == "cancelled after epoch 2"
    json.dumps(results)  # JSON-safe

    table = summary_table(results)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == list(SUMMARY_COLUMNS)
    assert list(table["variant"]) == ["lenet", "lenet_fc_bn2"]
    assert list(table["status"]) == ["completed", "cancelled"]
    assert list(table["best_val_accuracy"]) == [0.8, 0.9]
    assert list(table["epoch_reaching_baseline_best"]) == [2, 1]
    assert list(table["images_per_second"]) == [1500.0, 1500.0]


def test_result_dict_of_run_without_metrics(store):
    run = store.get(store.create_run(TrainConfig(), "g"))
    result = store.result_dict(run)
    assert result["history"] == {k: [] for k in HISTORY_KEYS}
    table = summary_table([result])
    assert table.loc[0, "best_val_accuracy"] is None or pd.isna(table.loc[0, "best_val_accuracy"])


# -- the file -----------------------------------------------------------------------------------


def test_file_uses_wal_journal_mode(store):
    assert store.path == store.home / "runs.sqlite" and store.path.is_file()
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    RunStore(store.home)  # reopening an existing store keeps it (and its runs)
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"


def test_reopening_keeps_runs(store):
    run_id = store.create_run(TrainConfig(seed=9), "g")
    store.add_batch(run_id, batch(1))
    again = RunStore(store.home)
    assert again.get(run_id).seed == 9
    assert len(again.batch_metrics([run_id])) == 1


def test_no_blobs_on_disk(store):
    run_id = store.create_run(TrainConfig(), "g")
    store.add_batch(run_id, batch(1))
    store.add_epoch(run_id, epoch_row(1))
    finish(store, run_id, test_accuracy=0.5, test_loss=1.0)
    with sqlite3.connect(store.path) as db:
        for table in ("runs", "batch_metrics", "epoch_metrics"):
            columns = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
            for column in columns:
                kinds = {r[0] for r in db.execute(f"SELECT typeof({column}) FROM {table}")}
                assert "blob" not in kinds, (table, column)


def test_bn_lab_home_env_is_respected(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("BN_LAB_HOME", str(tmp_path / "env home"))
    store = RunStore()
    assert store.home == tmp_path / "env home"
    assert (tmp_path / "env home" / "runs.sqlite").is_file()
    assert not (cwd / ".bn_lab").exists()
    run_id = store.create_run(TrainConfig(), "g")
    assert RunStore(tmp_path / "env home").get(run_id) is not None


@pytest.mark.parametrize("value", [None, ""])
def test_default_home_without_env(tmp_path, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    if value is None:
        monkeypatch.delenv("BN_LAB_HOME", raising=False)
    else:
        monkeypatch.setenv("BN_LAB_HOME", value)
    store = RunStore()
    assert (tmp_path / ".bn_lab" / "runs.sqlite").is_file()
    assert store.home.resolve() == (tmp_path / ".bn_lab").resolve()


# -- concurrency --------------------------------------------------------------------------------

_WRITER = """
import sys, time
from bn_core.runs.store.run_store import RunStore
store, run_id, seconds = RunStore(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()  # go
step, end = 0, time.time() + seconds
while time.time() < end:
    step += 1
    store.add_batch(run_id, {"step": step, "epoch": 1, "batch": step,
                             "epoch_progress": step / 1e6, "loss": 1.0, "accuracy": 0.5})
    if step % 20 == 0:
        store.update(run_id, heartbeat=time.time())
print(step, flush=True)
"""


def test_two_readers_while_one_writes(store):
    """A worker process writes batch metrics while two UI readers poll: nobody is blocked or
    sees an error, counts only grow, and the last read sees every row written."""
    run_id = store.create_run(TrainConfig(), "g")
    store.transition(run_id, ("queued",), "running")
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(store.home), str(run_id), "1.5"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=store.home,  # the installed package is found from any folder
    )
    try:
        assert writer.stdout.readline().strip() == "ready"
        writing = threading.Event()
        writing.set()
        counts: dict[int, list[int]] = {0: [], 1: []}
        errors: list[BaseException] = []

        def read(index: int) -> None:
            reader = RunStore(store.home)
            try:
                while True:
                    last = not writing.is_set()
                    counts[index].append(len(reader.batch_metrics([run_id])))
                    assert reader.get(run_id).status == "running"
                    if last:
                        return
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        readers = [threading.Thread(target=read, args=(i,)) for i in (0, 1)]
        for t in readers:
            t.start()
        writer.stdin.write("go\n")
        writer.stdin.flush()
        out, _ = writer.communicate(timeout=120)
        written = int(out.strip())
        writing.clear()
        for t in readers:
            t.join(120)
        assert not any(t.is_alive() for t in readers)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(30)

    assert writer.returncode == 0
    assert errors == []
    assert written > 20, "the writer barely wrote anything"
    for index, seen in counts.items():
        assert seen == sorted(seen), f"reader {index} saw the count go down"
        assert seen[-1] == written, f"reader {index}: last read {seen[-1]}, written {written}"
        assert len(seen) >= 5, f"reader {index} read only {len(seen)} times"
        # The reads really overlapped the writes.
        assert any(0 < n < written for n in seen), f"reader {index} saw no write in progress"
    rows = store.batch_metrics([run_id])
    assert [r["step"] for r in rows] == list(range(1, written + 1))
