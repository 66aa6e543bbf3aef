"""Tests for bn_core.data: finding, parsing, validating and splitting MNIST-style datasets.

Everything runs on tiny synthetic datasets in tmp_path; HOME, KERAS_HOME, BN_DATA_DIR,
SYSTEM_DIRS and the download hook are all redirected so the machine's real caches and the
network never leak in. The download tests run the real downloader against a local HTTP
mirror on 127.0.0.1 (via $BN_DATA_MIRROR). One test reads the real Fashion-MNIST when it is
installed.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from bn_core import data
from bn_core.data import DatasetError, download, search
from tests.conftest import assert_runs_without_tensorflow
from tests.dataset_helpers import (
    IDX_NAMES,
    KEYS,
    idx_bytes,
    make_arrays,
    write_arrays_npz,
    write_idx,
    write_idx_set,
)
from tests.helpers import REAL_FASHION, real_fashion

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_FETCH = download.fetch  # the autouse fixture replaces it; the download tests put it back


# ----------------------------------------------------------------------------- helpers


def assert_raw_equals(raw: data.RawData, arrays: dict) -> None:
    for key in KEYS:
        np.testing.assert_array_equal(getattr(raw, key), arrays[key])
    assert raw.x_train.dtype == np.uint8 and raw.x_test.dtype == np.uint8


def closed_port() -> int:
    """A local TCP port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg
    return msg


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Point every location load_raw looks at into tmp_path, and make downloads fail loudly."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("BN_DATA_DIR", raising=False)
    monkeypatch.setattr(search, "SYSTEM_DIRS", {"fashion_mnist": str(tmp_path / "system")})
    # Belt and braces: even the real downloader could only reach a closed local port.
    monkeypatch.setenv("BN_DATA_MIRROR", f"http://127.0.0.1:{closed_port()}/")
    calls = []

    def no_network(dataset):
        calls.append(dataset)
        raise RuntimeError("no network in tests")

    monkeypatch.setattr(download, "fetch", no_network)
    return calls


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_matches_source(tmp_path, gz):
    arrays = make_arrays()
    for path, key in zip(write_idx_set(tmp_path, arrays, gz=gz), KEYS, strict=True):
        read = data.read_idx(path)
        np.testing.assert_array_equal(read, arrays[key])
        assert read.dtype == np.uint8 and read.flags.writeable


def test_read_idx_raw_and_gz_agree(tmp_path):
    arr = make_arrays()["x_test"]
    a = data.read_idx(write_idx(tmp_path / "a-idx3-ubyte", arr))
    b = data.read_idx(write_idx(tmp_path / "a-idx3-ubyte.gz", arr))
    np.testing.assert_array_equal(a, b)


def test_npz_round_trip(tmp_path):
    arrays = make_arrays()
    raw = data.load_raw("mnist", write_arrays_npz(tmp_path / "d" / "mnist.npz", arrays).parent)
    assert_raw_equals(raw, arrays)
    assert "mnist.npz" in raw.source
    assert_raw_equals(data.read_npz(tmp_path / "d" / "mnist.npz"), arrays)


@pytest.mark.parametrize("name", ["fashion_mnist.npz", "fashion-mnist.npz"])
def test_fashion_npz_names(tmp_path, name):
    arrays = make_arrays()
    write_arrays_npz(tmp_path / "d" / name, arrays)
    assert_raw_equals(data.load_raw("fashion_mnist", tmp_path / "d"), arrays)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dotted", [False, True])
def test_idx_folder(tmp_path, gz, dotted):
    arrays = make_arrays()
    write_idx_set(tmp_path / "d", arrays, gz=gz, dotted=dotted)
    raw = data.load_raw("mnist", str(tmp_path / "d"))
    assert_raw_equals(raw, arrays)
    assert raw.source == f"IDX files in {tmp_path / 'd'}"


@pytest.mark.parametrize(
    "dataset, sub",
    [("mnist", "mnist"), ("fashion_mnist", "fashion-mnist"), ("fashion_mnist", "fashion_mnist")],
)
def test_idx_subfolder(tmp_path, dataset, sub):
    arrays = make_arrays()
    write_idx_set(tmp_path / "d" / sub, arrays, gz=True)
    assert_raw_equals(data.load_raw(dataset, tmp_path / "d"), arrays)
    assert data.locate(dataset, tmp_path / "d") == str(tmp_path / "d" / sub)


def test_npz_beats_idx_in_same_folder(tmp_path):
    a, b = make_arrays(seed=1), make_arrays(seed=2)
    write_arrays_npz(tmp_path / "d" / "mnist.npz", a)
    write_idx_set(tmp_path / "d", b)
    assert_raw_equals(data.load_raw("mnist", tmp_path / "d"), a)


def test_wrong_dataset_npz_is_ignored(tmp_path, isolated):
    # mnist.npz must not be taken for Fashion-MNIST.
    write_arrays_npz(tmp_path / "d" / "mnist.npz", make_arrays())
    with pytest.raises(DatasetError):
        data.load_raw("fashion_mnist", tmp_path / "d")


# ----------------------------------------------------------------------------- resolution order


def test_resolution_order(tmp_path, isolated):
    explicit, cached, system = make_arrays(seed=1), make_arrays(seed=2), make_arrays(seed=3)
    write_idx_set(tmp_path / "explicit", explicit)
    cache_paths = write_idx_set(tmp_path / "keras" / "datasets" / "fashion-mnist", cached, gz=True)
    write_idx_set(tmp_path / "system", system, gz=True)

    assert_raw_equals(data.load_raw("fashion_mnist", tmp_path / "explicit"), explicit)
    assert_raw_equals(data.load_raw("fashion_mnist"), cached)
    for p in cache_paths:
        p.unlink()
    raw = data.load_raw("fashion_mnist")
    assert_raw_equals(raw, system)
    assert str(tmp_path / "system") in raw.source
    assert isolated == []  # never downloaded


def test_bn_data_dir_env(tmp_path, monkeypatch):
    env, arg = make_arrays(seed=1), make_arrays(seed=2)
    write_arrays_npz(tmp_path / "env" / "mnist.npz", env)
    write_arrays_npz(tmp_path / "arg" / "mnist.npz", arg)
    monkeypatch.setenv("BN_DATA_DIR", str(tmp_path / "env"))
    assert_raw_equals(data.load_raw("mnist"), env)
    assert_raw_equals(data.load_raw("mnist", tmp_path / "arg"), arg)  # the argument wins


def test_keras_cache_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_HOME")
    arrays = make_arrays()
    write_arrays_npz(tmp_path / "home" / ".keras" / "datasets" / "mnist.npz", arrays)
    assert_raw_equals(data.load_raw("mnist", allow_download=False), arrays)


def test_empty_explicit_dir_falls_through(tmp_path):
    (tmp_path / "empty").mkdir()
    arrays = make_arrays()
    write_arrays_npz(tmp_path / "keras" / "datasets" / "mnist.npz", arrays)
    assert_raw_equals(data.load_raw("mnist", tmp_path / "empty"), arrays)


def test_download_only_when_nothing_local(tmp_path, monkeypatch):
    arrays = make_arrays()
    calls = []

    def fake_fetch(dataset):
        calls.append(dataset)
        return write_idx_set(tmp_path / "fetched", arrays)[0].parent  # outside every search path

    monkeypatch.setattr(download, "fetch", fake_fetch)
    write_arrays_npz(tmp_path / "d" / "mnist.npz", arrays)
    data.load_raw("mnist", tmp_path / "d")
    assert calls == []

    raw = data.load_raw("fashion_mnist")
    assert calls == ["fashion_mnist"] and raw.source.startswith("fashion_mnist download from ")
    assert_raw_equals(raw, arrays)

    with pytest.raises(DatasetError, match=r"download \(disabled\)"):
        data.load_raw("fashion_mnist", allow_download=False)
    assert calls == ["fashion_mnist"]


def test_downloaded_data_is_validated(tmp_path, monkeypatch):
    bad = make_arrays()
    bad["y_test"][0] = 12
    npz = write_arrays_npz(tmp_path / "keras" / "datasets" / "mnist.npz", bad)
    monkeypatch.setattr(download, "fetch", lambda dataset: npz)
    with pytest.raises(DatasetError, match="0..9"):
        data.load_raw("mnist")


def test_download_failure_mnist_lists_everything(tmp_path, isolated):
    with pytest.raises(DatasetError) as err:
        data.load_raw("mnist")
    msg = assert_one_line(err)
    assert msg.startswith("mnist not found: tried BN_DATA_DIR (unset), ")
    assert f"{tmp_path / 'keras' / 'datasets' / 'mnist.npz'} (missing)" in msg
    assert "download (failed: RuntimeError: no network in tests)" in msg
    assert "Fix:" in msg and "--data-dir" in msg and "--dataset fashion_mnist" in msg
    assert isolated == ["mnist"]


def test_download_failure_fashion_lists_everything(tmp_path, monkeypatch, isolated):
    (tmp_path / "d").mkdir()
    monkeypatch.setenv("BN_DATA_DIR", str(tmp_path / "d"))
    with pytest.raises(DatasetError) as err:
        data.load_raw("fashion_mnist")
    msg = assert_one_line(err)
    assert f"BN_DATA_DIR {tmp_path / 'd'} (no fashion_mnist.npz or IDX files)" in msg
    assert f"{tmp_path / 'keras' / 'datasets' / 'fashion-mnist'} (missing)" in msg
    assert f"{tmp_path / 'system'} (missing)" in msg
    assert "download (failed:" in msg and "apt-get install dataset-fashion-mnist" in msg


def test_incomplete_idx_set_is_reported(tmp_path):
    paths = write_idx_set(tmp_path / "d" / "mnist", make_arrays())
    paths[3].unlink()
    with pytest.raises(DatasetError) as err:
        data.load_raw("mnist", tmp_path / "d", allow_download=False)
    assert "incomplete: no t10k-labels-idx1-ubyte[.gz]" in assert_one_line(err)


def test_unknown_dataset():
    for call in (
        lambda: data.load_raw("cifar10"),
        lambda: data.locate("cifar10"),
        lambda: data.load("cifar10"),
    ):
        with pytest.raises(DatasetError, match="mnist, fashion_mnist"):
            call()


def test_nonexistent_explicit_dir(tmp_path, monkeypatch, isolated):
    with pytest.raises(DatasetError, match="does not exist") as err:
        data.load_raw("mnist", tmp_path / "nope")
    assert "mnist.npz or the four IDX files" in assert_one_line(err)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="does not exist"):
        data.load_raw("mnist", tmp_path / "file")
    monkeypatch.setenv("BN_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="BN_DATA_DIR"):
        data.load_raw("mnist")
    assert isolated == []


# ----------------------------------------------------------------------------- corruption


def _corrupt_idx(folder: Path, how: str) -> str:
    """Write a good gz IDX set, damage one file as described; return text the error must contain."""
    arrays = make_arrays()
    if how == "label out of range":
        arrays["y_train"][3] = 10
    if how == "count mismatch":
        arrays["y_test"] = arrays["y_test"][:-1]
    if how == "image shape":
        arrays["x_train"] = arrays["x_train"][:, :27, :27]
    paths = write_idx_set(folder, arrays, gz=True)
    img, lbl = paths[0], paths[1]
    if how == "bad magic":
        img.write_bytes(gzip.compress(b"\x01\x02" + idx_bytes(arrays["x_train"])[2:]))
    elif how == "type byte":
        write_idx(img, arrays["x_train"], type_byte=0x0D)
    elif how == "labels dims":
        write_idx(lbl, arrays["y_train"].reshape(5, 10))
    elif how == "images dims":
        write_idx(img, arrays["x_train"].reshape(-1))
    elif how == "truncated":
        img.write_bytes(gzip.compress(idx_bytes(arrays["x_train"])[:-7]))
    elif how == "trailing bytes":
        img.write_bytes(gzip.compress(idx_bytes(arrays["x_train"]) + b"\x00"))
    elif how == "truncated gzip":
        blob = img.read_bytes()
        img.write_bytes(blob[: len(blob) // 2])
    elif how == "bad gzip":
        img.write_bytes(b"this is not gzip at all")
    elif how == "empty":
        img.write_bytes(b"")
    return {
        "bad magic": "bad magic",
        "type byte": "0x0d",
        "labels dims": "expected (N,)",
        "images dims": "expected (N, 28, 28)",
        "truncated": "truncated or corrupt",
        "trailing bytes": "truncated or corrupt",
        "truncated gzip": "cannot read/decompress",
        "bad gzip": "cannot read/decompress",
        "empty": "not an IDX file",
        "label out of range": "expected 0..9",
        "count mismatch": "has 20 images but",
        "image shape": "expected (N, 28, 28)",
    }[how]


CORRUPTIONS = [
    "bad magic",
    "type byte",
    "labels dims",
    "images dims",
    "truncated",
    "trailing bytes",
    "truncated gzip",
    "bad gzip",
    "empty",
    "label out of range",
    "count mismatch",
    "image shape",
]


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_corrupt_idx_is_an_error_not_a_fallthrough(tmp_path, how, isolated):
    expected = _corrupt_idx(tmp_path / "d", how)
    write_arrays_npz(
        tmp_path / "keras" / "datasets" / "mnist.npz", make_arrays()
    )  # a good copy that must NOT be used
    with pytest.raises(DatasetError) as err:
        data.load_raw("mnist", tmp_path / "d")
    msg = assert_one_line(err)
    assert expected in msg
    assert str(tmp_path / "d") in msg  # names the file
    assert isolated == []


def test_corrupt_system_dir_is_an_error(tmp_path):
    _corrupt_idx(tmp_path / "system", "truncated")
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        data.load_raw("fashion_mnist")


def _bad_npz(path: Path, how: str) -> None:
    arrays = make_arrays()
    if how == "missing key":
        del arrays["y_test"]
    elif how == "object array":
        arrays["x_train"] = np.array([arrays["x_train"][0], "evil"], dtype=object)
    elif how == "image shape":
        arrays["x_train"] = arrays["x_train"].reshape(50, 784)
    elif how == "float images":
        arrays["x_train"] = arrays["x_train"].astype(np.float32)
    elif how == "pixel range":
        arrays["x_test"] = arrays["x_test"].astype(np.int16) * 2
    elif how == "label shape":
        arrays["y_train"] = arrays["y_train"].reshape(50, 1)
    write_arrays_npz(path, arrays)
    if how == "not a zip":
        path.write_bytes(b"garbage" * 10)
    elif how == "truncated":
        blob = path.read_bytes()
        path.write_bytes(blob[: len(blob) // 2])


NPZ_CORRUPTIONS = {
    "missing key": "missing array(s) y_test",
    "object array": "object (pickled) arrays",
    "image shape": "x_train]: images have shape (50, 784)",
    "float images": "dtype float32",
    "pixel range": "outside 0..255",
    "label shape": "expected (N,)",
    "not a zip": "not an npz",
    "truncated": "unreadable npz",
}


@pytest.mark.parametrize("how", sorted(NPZ_CORRUPTIONS))
def test_corrupt_npz(tmp_path, how):
    path = tmp_path / "d" / "mnist.npz"
    _bad_npz(path, how)
    with pytest.raises(DatasetError) as err:
        data.load_raw("mnist", tmp_path / "d")
    msg = assert_one_line(err)
    assert NPZ_CORRUPTIONS[how] in msg and str(path) in msg


def test_int_npz_is_accepted_as_uint8(tmp_path):
    arrays = make_arrays()
    arrays["x_train"] = arrays["x_train"].astype(np.int64)
    raw = data.read_npz(write_arrays_npz(tmp_path / "mnist.npz", arrays))
    assert raw.x_train.dtype == np.uint8
    np.testing.assert_array_equal(raw.x_train, arrays["x_train"])


# ----------------------------------------------------------------------------- locate


def test_locate(tmp_path):
    assert data.locate("mnist") is None
    assert data.locate("fashion_mnist") is None

    write_idx_set(tmp_path / "system", make_arrays(), gz=True)
    assert data.locate("fashion_mnist") == str(tmp_path / "system")

    cache = write_arrays_npz(tmp_path / "keras" / "datasets" / "mnist.npz", make_arrays())
    assert data.locate("mnist") == str(cache)

    write_idx_set(tmp_path / "d", make_arrays())
    assert data.locate("mnist", tmp_path / "d") == str(tmp_path / "d")
    with pytest.raises(DatasetError):
        data.locate("mnist", tmp_path / "nope")


def test_locate_does_not_parse(tmp_path, isolated):
    # locate only checks existence: a corrupt file is reported by load_raw, not here.
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "mnist.npz").write_bytes(b"junk")
    assert data.locate("mnist", tmp_path / "d") == str(tmp_path / "d" / "mnist.npz")
    with pytest.raises(DatasetError):
        data.load_raw("mnist", tmp_path / "d")
    assert isolated == []


# ----------------------------------------------------------------------------- prepare


@pytest.fixture
def raw() -> data.RawData:
    arrays = make_arrays()
    return data.RawData(*(arrays[k] for k in KEYS), source="synthetic")


def train_ids(x: np.ndarray) -> np.ndarray:
    """Recover training-row indices from pixel [0, 0] (stored at [2, 2] after padding)."""
    return np.rint(x[:, 2, 2, 0] * 255).astype(int)


def test_prepare_shapes_dtypes_padding(raw):
    s = data.prepare(raw, val_size=10)
    assert s.x_train.shape == (40, 32, 32, 1) and s.x_val.shape == (10, 32, 32, 1)
    assert s.x_test.shape == (20, 32, 32, 1) and s.y_test.shape == (20,)
    for x in (s.x_train, s.x_val, s.x_test):
        assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 1.0
        for border in (x[:, :2], x[:, -2:], x[:, :, :2], x[:, :, -2:]):
            assert not border.any()
    for y in (s.y_train, s.y_val, s.y_test):
        assert y.dtype == np.int32
    # The test set is whole and in order; its interior is the original scaled to [0, 1].
    np.testing.assert_allclose(s.x_test[:, 2:30, 2:30, 0], raw.x_test / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(s.y_test, raw.y_test)
    assert s.source == "synthetic"


def test_prepare_split_is_a_partition(raw):
    s = data.prepare(raw, val_size=10, seed=3)
    tr, va = train_ids(s.x_train), train_ids(s.x_val)
    assert sorted(np.concatenate([tr, va])) == list(range(50))
    np.testing.assert_array_equal(s.y_train, raw.y_train[tr])
    np.testing.assert_array_equal(s.y_val, raw.y_train[va])
    np.testing.assert_allclose(s.x_val[:, 2:30, 2:30, 0], raw.x_train[va] / 255.0, rtol=1e-6)


def test_prepare_seeded(raw):
    a, b, c = (data.prepare(raw, val_size=10, seed=s) for s in (0, 0, 1))
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    assert not np.array_equal(train_ids(a.x_val), train_ids(c.x_val))
    perm = np.random.default_rng(0).permutation(50)  # the documented recipe
    np.testing.assert_array_equal(train_ids(a.x_val), perm[:10])


def test_prepare_train_limit(raw):
    full = data.prepare(raw, val_size=10, seed=5)
    small = data.prepare(raw, val_size=10, train_limit=7, seed=5)
    assert len(small.x_train) == 7 and len(small.x_val) == 10
    np.testing.assert_array_equal(
        small.x_train, full.x_train[:7]
    )  # a prefix of the same permutation
    np.testing.assert_array_equal(small.x_val, full.x_val)  # validation unaffected
    assert len(data.prepare(raw, val_size=10, train_limit=1000).x_train) == 40  # too many: use all


def test_prepare_val_size_zero(raw):
    s = data.prepare(raw, val_size=0)
    assert len(s.x_train) == 50 and s.x_val.shape == (0, 32, 32, 1) and s.y_val.shape == (0,)


@pytest.mark.parametrize(
    "kwargs", [{"val_size": 50}, {"val_size": 80}, {"val_size": -1}, {"train_limit": 0}]
)
def test_prepare_bad_arguments(raw, kwargs):
    with pytest.raises(DatasetError) as err:
        data.prepare(raw, **kwargs)
    assert_one_line(err)


def test_load_is_prepare_of_load_raw(tmp_path):
    write_arrays_npz(tmp_path / "d" / "mnist.npz", make_arrays())
    a = data.load("mnist", tmp_path / "d", val_size=5, train_limit=20, seed=2)
    b = data.prepare(data.load_raw("mnist", tmp_path / "d"), val_size=5, train_limit=20, seed=2)
    for key in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "source"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


# ----------------------------------------------------------------------------- download


@dataclass
class Mirror:
    """A local HTTP server standing in for the dataset mirror; `requests` lists the paths served."""

    root: Path
    requests: list[str] = field(default_factory=list)

    def publish(self, monkeypatch, dataset: str, files: dict[str, bytes], wrong: str = "") -> None:
        """Serve `files` and make them the published set of `dataset`, with their true MD5s, or
        with a wrong one for the file named `wrong`."""
        remotes = []
        for name, blob in files.items():
            (self.root / name).write_bytes(blob)
            digest = hashlib.md5(blob).hexdigest() if name != wrong else "0" * 32
            remotes.append(download.Remote(name, "md5", digest, len(blob)))
        monkeypatch.setitem(download.FILES, dataset, tuple(remotes))


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """The real downloader, pointed by $BN_DATA_MIRROR at a server on 127.0.0.1."""
    served = Mirror(tmp_path / "mirror")
    served.root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served.root), **kwargs)

        def do_GET(self):
            served.requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):  # keep pytest's output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("BN_DATA_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setattr(download, "fetch", REAL_FETCH)
    yield served
    server.shutdown()
    server.server_close()
    thread.join()


def npz_bytes(tmp_path: Path, arrays: dict) -> bytes:
    return write_arrays_npz(tmp_path / "scratch" / "mnist.npz", arrays).read_bytes()


def fashion_files(arrays: dict) -> dict[str, bytes]:
    """The four gzipped IDX files of a dataset, by the names the mirror uses."""
    return {
        f"{name}.gz": gzip.compress(idx_bytes(arrays[key]))
        for name, key in zip(IDX_NAMES, KEYS, strict=True)
    }


def test_download_mnist_is_verified_cached_and_loaded(tmp_path, mirror, monkeypatch):
    arrays = make_arrays()
    blob = npz_bytes(tmp_path, arrays)
    mirror.publish(monkeypatch, "mnist", {"mnist.npz": blob})
    raw = data.load_raw("mnist")
    assert_raw_equals(raw, arrays)
    cache = tmp_path / "keras" / "datasets"
    assert (
        raw.source.startswith("mnist download from http://127.0.0.1:") and str(cache) in raw.source
    )
    assert os.listdir(cache) == ["mnist.npz"]  # no temporary file left behind
    assert (cache / "mnist.npz").read_bytes() == blob
    assert data.locate("mnist") == str(cache / "mnist.npz")  # where keras.datasets keeps it
    data.load_raw("mnist")
    assert mirror.requests == ["/mnist.npz"]  # the second load is local


def test_download_fashion_mnist(tmp_path, mirror, monkeypatch):
    arrays = make_arrays()
    files = fashion_files(arrays)
    mirror.publish(monkeypatch, "fashion_mnist", files)
    assert_raw_equals(data.load_raw("fashion_mnist"), arrays)
    folder = tmp_path / "keras" / "datasets" / "fashion-mnist"
    assert sorted(os.listdir(folder)) == sorted(files)
    assert data.locate("fashion_mnist") == str(folder)
    assert sorted(mirror.requests) == sorted(f"/{n}" for n in files)


def test_download_keeps_verified_files_and_replaces_others(tmp_path, mirror, monkeypatch):
    files = fashion_files(make_arrays())
    mirror.publish(monkeypatch, "fashion_mnist", files)
    folder = tmp_path / "keras" / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True)
    names = list(files)
    (folder / names[0]).write_bytes(files[names[0]])  # good: kept
    (folder / names[1]).write_bytes(b"stale")  # bad: replaced
    assert download.fetch("fashion_mnist") == folder
    assert sorted(mirror.requests) == sorted(f"/{n}" for n in names[1:])
    for name, blob in files.items():
        assert (folder / name).read_bytes() == blob


def test_download_progress(tmp_path, mirror, monkeypatch):
    files = fashion_files(make_arrays())
    mirror.publish(monkeypatch, "fashion_mnist", files)
    monkeypatch.setattr(download, "_CHUNK", 4096)
    calls = []
    download.fetch("fashion_mnist", on_progress=lambda done, total: calls.append((done, total)))
    total = sum(len(b) for b in files.values())
    assert len(calls) > len(files)  # several updates per file
    assert {t for _, t in calls} == {total}
    done = [d for d, _ in calls]
    assert done == sorted(set(done)) and done[-1] == total


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_download_checksum_mismatch(tmp_path, mirror, monkeypatch, dataset):
    if dataset == "mnist":
        files, wrong = {"mnist.npz": npz_bytes(tmp_path, make_arrays())}, "mnist.npz"
    else:
        files, wrong = fashion_files(make_arrays()), "t10k-labels-idx1-ubyte.gz"  # the last
    mirror.publish(monkeypatch, dataset, files, wrong=wrong)
    with pytest.raises(DatasetError) as err:
        data.load_raw(dataset)
    msg = assert_one_line(err)
    assert wrong in msg and "0" * 32 in msg and hashlib.md5(files[wrong]).hexdigest() in msg
    cache = tmp_path / "keras" / "datasets"
    left = sorted(p.name for p in cache.rglob("*") if p.is_file())
    # The files that did verify stay (a retry skips them); the bad one and its temp file do not.
    assert left == sorted(n for n in files if n != wrong)
    assert data.locate(dataset) is None


def test_download_connection_refused_is_not_found(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "fetch", REAL_FETCH)
    monkeypatch.setenv("BN_DATA_MIRROR", f"http://127.0.0.1:{closed_port()}/")
    with pytest.raises(DatasetError) as err:
        data.load_raw("mnist")
    msg = assert_one_line(err)
    assert msg.startswith("mnist not found: tried BN_DATA_DIR (unset), ")
    assert "download (failed: URLError:" in msg and "Fix: connect to the internet" in msg
    assert not (tmp_path / "keras").exists()  # nothing created in the cache


def test_download_http_error_is_not_found(mirror):
    with pytest.raises(DatasetError) as err:  # nothing published: the mirror answers 404
        data.load_raw("fashion_mnist")
    msg = assert_one_line(err)
    assert msg.startswith("fashion_mnist not found: tried ")
    assert "download (failed: HTTPError: HTTP Error 404" in msg


def test_download_timeout_is_not_found(monkeypatch):
    monkeypatch.setattr(download, "fetch", REAL_FETCH)
    monkeypatch.setattr(download, "TIMEOUT_S", 0.3)
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setenv("BN_DATA_MIRROR", f"http://127.0.0.1:{silent.getsockname()[1]}/")
        with pytest.raises(DatasetError) as err:
            data.load_raw("mnist")
    assert "download (failed:" in assert_one_line(err) and "timed out" in str(err.value)


def test_download_from_file_mirror(tmp_path, monkeypatch):
    arrays = make_arrays()
    folder = tmp_path / "offline-copy"
    folder.mkdir()
    Mirror(folder).publish(monkeypatch, "mnist", {"mnist.npz": npz_bytes(tmp_path, arrays)})
    monkeypatch.setattr(download, "fetch", REAL_FETCH)
    monkeypatch.setenv("BN_DATA_MIRROR", folder.as_uri())
    assert_raw_equals(data.load_raw("mnist"), arrays)


def test_mirror_url(monkeypatch):
    monkeypatch.delenv("BN_DATA_MIRROR")
    assert download.mirror() == "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
    monkeypatch.setenv("BN_DATA_MIRROR", "http://example.invalid/data")
    assert download.mirror() == "http://example.invalid/data/"


# ----------------------------------------------------------------------------- imports, real data


def test_data_package_never_imports_tensorflow(tmp_path):
    # Every module under bn_core/data, and the download path run to its end (a refused port).
    assert_runs_without_tensorflow(
        """
        import importlib, pkgutil
        import bn_core.data as d
        for m in pkgutil.walk_packages(d.__path__, "bn_core.data."):
            importlib.import_module(m.name)
        try:
            d.load_raw("mnist")
        except d.DatasetError as e:
            assert "download (failed: URLError" in str(e), e
        else:
            raise SystemExit("expected a DatasetError: nothing to load, no mirror")
        """,
        env={
            "HOME": str(tmp_path),
            "KERAS_HOME": str(tmp_path / "keras"),
            "BN_DATA_MIRROR": f"http://127.0.0.1:{closed_port()}/",
            "BN_DATA_DIR": None,
        },
    )


def test_import_and_local_load_do_not_load_tensorflow(tmp_path):
    write_arrays_npz(tmp_path / "mnist.npz", make_arrays())
    assert_runs_without_tensorflow(
        "from bn_core import data\n"
        f"data.load('mnist', {str(tmp_path)!r}, val_size=5, allow_download=False)\n"
    )


def test_real_fashion_mnist(monkeypatch):
    real_fashion()  # installed by scripts/test.sh; missing is a failure, not a skip
    monkeypatch.setattr(search, "SYSTEM_DIRS", {"fashion_mnist": REAL_FASHION})
    assert data.locate("fashion_mnist") == REAL_FASHION
    raw = data.load_raw("fashion_mnist", allow_download=False)
    assert raw.x_train.shape == (60000, 28, 28) and raw.y_train.shape == (60000,)
    assert raw.x_test.shape == (10000, 28, 28) and raw.y_test.shape == (10000,)
    assert raw.y_train.min() == 0 and raw.y_train.max() == 9
    assert set(np.unique(raw.y_test)) == set(range(10))
    assert REAL_FASHION in raw.source
