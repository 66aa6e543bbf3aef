"""A damaged dataset is "found but damaged", never "available locally": data.search's
header_problem (headers and sizes only) on truncated and garbage files, and what the Train
form and page make of it. Tiny synthetic files in tmp_path; nothing is downloaded."""

from __future__ import annotations

import gzip
import os
import zipfile

import numpy as np
import pytest

from bn_core import data
from bn_core.data.search import header_problem
from bn_core.views import datasets, train_form
from tests.dataset_helpers import idx_bytes, make_arrays, write_arrays_npz, write_idx_set
from tests.helpers import open_page, real_fashion

# ----------------------------------------------------------------------------- npz


@pytest.fixture
def npz(tmp_path):
    """A sound mnist.npz (50 training, 20 test images) in its own folder."""
    return write_arrays_npz(tmp_path / "d" / "mnist.npz", make_arrays())


def loads(path) -> bool:
    """Whether the full reader accepts the dataset at ``path`` (npz file or IDX folder)."""
    try:
        data._read(path)
    except data.DatasetError:
        return False
    return True


def test_sound_files_have_no_problem(npz, tmp_path):
    assert header_problem(npz) is None and loads(npz)
    for gz in (False, True):
        folder = tmp_path / f"idx-{gz}"
        write_idx_set(folder, make_arrays(), gz=gz)
        assert header_problem(folder) is None and loads(folder)


def damaged_npz(npz, how: str):
    raw = npz.read_bytes()
    arrays = make_arrays()
    if how == "truncated":
        npz.write_bytes(raw[: len(raw) // 2])
    elif how == "garbage":
        npz.write_bytes(os.urandom(len(raw)))
    elif how == "empty":
        npz.write_bytes(b"")
    elif how == "missing key":
        np.savez(npz, **{k: v for k, v in arrays.items() if k != "y_test"})
    elif how == "wrong shape":
        np.savez(npz, **{**arrays, "x_train": np.zeros((50, 32, 32), np.uint8)})
    elif how == "floats":
        np.savez(npz, **{**arrays, "x_test": arrays["x_test"].astype(np.float32)})
    elif how == "pickled":
        np.savez(npz, **{**arrays, "y_train": np.array([{"a": 1}] * 50, dtype=object)})
    elif how == "counts":
        np.savez(npz, **{**arrays, "y_train": arrays["y_train"][:49]})
    return npz


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("truncated", "mnist.npz: unreadable (BadZipFile: File is not a zip file)"),
        ("garbage", "mnist.npz: not an npz (zip) archive"),
        ("empty", "mnist.npz: not an npz (zip) archive"),
        ("missing key", "mnist.npz: missing array(s) y_test"),
        ("wrong shape", "mnist.npz[x_train]: images of shape (50, 32, 32), expected (N, 28, 28)"),
        ("floats", "mnist.npz[x_test.npy]: dtype float32, expected integers (uint8)"),
        ("pickled", "mnist.npz[y_train.npy]: dtype object, expected integers (uint8)"),
        ("counts", "mnist.npz[x_train] has 50 images but "),
    ],
)
def test_a_damaged_npz_is_named_in_one_line(npz, how, expected):
    damaged_npz(npz, how)
    problem = header_problem(npz)
    assert problem is not None and problem.startswith(str(npz.parent) + "/"), problem
    assert expected in problem and "\n" not in problem
    assert not loads(npz)  # the full reader refuses it too: no false alarm


def test_an_npz_member_shorter_than_its_header_says(npz):
    """The zip directory is intact, but the x_train member holds 10 of the 50 images its .npy
    header declares: its size (from the zip directory) gives it away."""
    arrays = make_arrays()
    header = np.lib.format.header_data_from_array_1_0(arrays["x_train"])
    with zipfile.ZipFile(npz, "w") as archive:
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", "w") as f:
                if key == "x_train":
                    np.lib.format.write_array_header_1_0(f, header)
                    f.write(value[:10].tobytes())
                else:
                    np.lib.format.write_array(f, value)
    problem = header_problem(npz)
    assert "mnist.npz[x_train.npy]: " in problem and "header (50, 28, 28) implies" in problem
    assert not loads(npz)


# ----------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("truncated", "truncated or corrupt"),
        ("garbage", "not an IDX file of 3-D unsigned bytes (magic "),
        ("empty", "(magic missing: empty file)"),
        ("wrong ndim", "not an IDX file of 3-D unsigned bytes (magic 00000802)"),
        ("wrong dims", "images of shape (50, 14, 56), expected (N, 28, 28)"),
    ],
)
def test_a_damaged_idx_file_is_named_in_one_line(tmp_path, gz, how, expected):
    folder = tmp_path / "idx"
    paths = write_idx_set(folder, make_arrays(), gz=gz)
    images = paths[0]  # train-images-idx3-ubyte[.gz]
    raw = idx_bytes(make_arrays()["x_train"])
    if how == "truncated":
        raw = raw[: len(raw) - 100]
    elif how == "garbage":
        raw = os.urandom(len(raw))
    elif how == "empty":
        raw = b""
    elif how == "wrong ndim":
        raw = idx_bytes(make_arrays()["x_train"].reshape(50, 784))
    elif how == "wrong dims":
        raw = idx_bytes(make_arrays()["x_train"].reshape(50, 14, 56))
    images.write_bytes(gzip.compress(raw) if gz and how != "garbage" else raw)
    problem = header_problem(folder)
    assert problem is not None and problem.startswith(str(images)), problem
    assert expected in problem and "\n" not in problem
    assert not loads(folder)


def test_a_truncated_gzip_file_is_damaged(tmp_path):
    folder = tmp_path / "idx"
    paths = write_idx_set(folder, make_arrays(n_train=2000), gz=True)
    packed = paths[0].read_bytes()
    paths[0].write_bytes(packed[: len(packed) * 2 // 3])  # a download cut short
    problem = header_problem(folder)
    assert problem.startswith(f"{paths[0]}: uncompressed size ") or "unreadable" in problem
    assert not loads(folder)


def test_label_and_image_counts_must_agree(tmp_path):
    folder = tmp_path / "idx"
    arrays = make_arrays()
    paths = write_idx_set(folder, arrays)
    paths[3].write_bytes(idx_bytes(arrays["y_test"][:19]))
    problem = header_problem(folder)
    assert problem == f"{paths[2]} has 20 images but {paths[3]} has 19 labels"
    assert not loads(folder)


def test_a_folder_that_lost_a_file_is_damaged(tmp_path):
    folder = tmp_path / "idx"
    write_idx_set(folder, make_arrays())[1].unlink()
    assert header_problem(folder) == f"{folder}: no train-labels-idx1-ubyte[.gz]"


def test_the_real_fashion_mnist_is_sound():
    assert header_problem(real_fashion()) is None  # missing: a failure, not a skip


# ----------------------------------------------------------------------------- the forms


@pytest.fixture
def no_usual_places(tmp_path, monkeypatch):
    """Nothing in the Keras cache, $BN_DATA_DIR or the system folder."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("BN_DATA_DIR", raising=False)
    monkeypatch.setattr(data.search, "SYSTEM_DIRS", {})


def test_dataset_status_says_found_but_damaged(npz, no_usual_places):
    folder = str(npz.parent)
    assert datasets.dataset_status("mnist", folder)[0] == "local"
    damaged_npz(npz, "truncated")
    kind, message = datasets.dataset_status("mnist", folder)
    assert kind == "damaged" and "available" not in message
    assert message == (
        f"found but damaged: {npz}: unreadable (BadZipFile: File is not a zip file). Replace "
        "it with a good copy, or delete it and download the dataset again."
    )
    assert not datasets.available("mnist", folder)
    assert datasets.data_problem("mnist", folder) == f"mnist was {message}"
    configs, errors = train_form.train_configs({}, ["lenet"], [0], folder)
    assert configs == [] and errors == [f"mnist was {message}"]


def test_train_page_shows_a_damaged_file_and_queues_nothing(runner, have, npz):  # noqa: F811
    have("fashion_mnist")
    damaged_npz(npz, "garbage")
    at = open_page("pages/train.py")
    at.selectbox(key="train-dataset").set_value("mnist").run()
    at.text_input(key="train-data-dir").set_value(str(npz.parent)).run()
    (warning,) = [w.value for w in at.warning]
    assert warning == f"**mnist**: found but damaged: {npz}: not an npz (zip) archive. " + (
        "Replace it with a good copy, or delete it and download the dataset again."
    )
    assert "available locally" not in " ".join(c.value for c in at.caption)
    assert at.button(key="train-start").disabled
    assert runner.store.list_runs() == []
