"""No reader of BN Lab's files unpickles what it reads: a pickle that would run code when
unpickled (here: create a marker file) is fed to every reader of a file someone else could
have written (the run store, replay and progress files, checkpoints, dataset npz files),
as the whole file and, in an npz, as an object array. Each must refuse it, or treat the file
as damaged, with its own clear error; the marker must never appear."""

from __future__ import annotations

import io
import pickle
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bn_core import data
from bn_core.config import TrainConfig
from bn_core.data.files import DatasetError, read_npz
from bn_core.nn import checkpoint
from bn_core.runs.replays.files import ReplayFileError, load_replay, read_progress
from bn_core.runs.store.errors import StoreError
from bn_core.runs.store.run_store import RunStore


class Trap:
    """Unpickling this creates ``marker`` (``open(marker, "w")``): code run by the reader."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickle_bytes(marker: Path) -> bytes:
    return pickle.dumps(Trap(marker), protocol=2)


def npz_with_object_array(path: Path, marker: Path, names: list[str]) -> Path:
    """An npz whose members ``names`` are .npy object arrays holding a Trap (numpy pickles
    them: ``np.load(allow_pickle=True)`` would create the marker)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            buffer = io.BytesIO()
            np.save(buffer, np.array([Trap(marker)], dtype=object), allow_pickle=True)
            archive.writestr(f"{name}.npy", buffer.getvalue())
    return path


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "UNPICKLED"
    # The trap works: unpickling it does create the marker (then it is removed again).
    pickle.loads(pickle_bytes(path)).close()
    assert path.exists()
    path.unlink()
    return path


def test_the_run_store_refuses_a_pickle_as_its_database(tmp_path, marker):
    home = tmp_path / "home"
    home.mkdir()
    (home / "runs.sqlite").write_bytes(pickle_bytes(marker))
    with pytest.raises(StoreError) as caught:
        RunStore(home).list_runs()
    assert str(caught.value).strip()
    assert not marker.exists()


def test_a_pickle_in_a_store_row_is_a_damaged_row_not_an_object(tmp_path, marker):
    store = RunStore(tmp_path / "home")
    good = store.create_run(TrainConfig(seed=1), "g")
    bad = store.create_run(TrainConfig(seed=2), "g")
    db = sqlite3.connect(store.path)
    try:
        columns = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
        text_columns = [c for c in columns if c.endswith("json") or c == "config"]
        assert text_columns, columns  # the run's config is stored as text somewhere
        for column in text_columns:
            db.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (pickle_bytes(marker), bad))
        db.commit()
    finally:
        db.close()
    runs = RunStore(store.home).list_runs()
    assert [r.id for r in runs] == [good]  # the damaged row is skipped, never decoded
    assert not marker.exists()


def test_a_replay_or_progress_file_that_is_a_pickle_is_refused(tmp_path, marker):
    replay = tmp_path / "run-7.json"
    replay.write_bytes(pickle_bytes(marker))
    with pytest.raises(ReplayFileError, match="run-7.json: "):
        load_replay(replay, 7)
    progress = tmp_path / "replay-7.progress.json"
    progress.write_bytes(pickle_bytes(marker))
    assert read_progress(progress) is None
    assert not marker.exists()


@pytest.mark.parametrize("how", ["whole file", "object arrays"])
def test_a_checkpoint_holding_a_pickle_is_refused(tmp_path, marker, how):
    path = tmp_path / "checkpoint.npz"
    if how == "whole file":
        path.write_bytes(pickle_bytes(marker))
    else:
        npz_with_object_array(path, marker, ["meta", "v0"])
    with pytest.raises(checkpoint.CheckpointError) as caught:
        checkpoint.load(path, expected={}, epochs=1)
    assert "checkpoint.npz" in str(caught.value)
    assert checkpoint.peek(path) is None
    assert not marker.exists()


@pytest.mark.parametrize("how", ["whole file", "object arrays"])
def test_a_dataset_npz_holding_a_pickle_is_refused(tmp_path, marker, how):
    folder = tmp_path / "d"
    folder.mkdir()
    path = folder / "mnist.npz"
    if how == "whole file":
        path.write_bytes(pickle_bytes(marker))
        message = r"not an npz \(zip\) archive"
    else:
        npz_with_object_array(path, marker, ["x_train", "y_train", "x_test", "y_test"])
        message = "object"
    with pytest.raises(DatasetError, match=message):
        read_npz(path)
    with pytest.raises(DatasetError):
        data.load_raw("mnist", folder, allow_download=False)
    assert data.search.header_problem(path)  # the folder's check calls it damaged too
    assert not marker.exists()
