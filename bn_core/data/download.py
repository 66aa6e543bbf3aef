"""Downloading MNIST / Fashion-MNIST with the standard library, checked against published hashes.

Files come from the mirror keras.datasets itself downloads from, `MIRROR`; set $BN_DATA_MIRROR
to another base URL (http://, https:// or file://, e.g. an offline copy or a test server) to
use that instead. They land in the Keras cache in keras.datasets' own layout
(`search.KERAS_LAYOUT`), so a copy downloaded by an older version of this lab (through Keras)
and one downloaded here are interchangeable.

Each file is streamed into a temporary file beside its destination, hashed on the way, and
renamed into place only if its checksum matches: the cache never holds a partial or
unverified file. A mismatch deletes the temporary file and raises DatasetError; a mirror that
cannot be reached raises urllib.error.URLError, TimeoutError or OSError for the caller to report.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bn_core.atomic import atomic_path
from bn_core.data.files import DatasetError
from bn_core.data.search import KERAS_LAYOUT, check_name, keras_cache

MIRROR = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
TIMEOUT_S = 30.0  # per connect and per read: a stalled mirror fails instead of hanging a run
_CHUNK = 1 << 20  # bytes per read: a progress update every MiB

Progress = Callable[[int, int], None]  # on_progress(done_bytes, total_bytes)


@dataclass(frozen=True)
class Remote:
    """One published file of a dataset: its name on the mirror and in the cache, its checksum."""

    name: str
    algorithm: str  # hashlib name of the published checksum
    digest: str  # hex digest, as published
    size: int  # bytes, as published; only used for progress totals


# MNIST: the SHA-256 keras.datasets.mnist checks. Fashion-MNIST: Zalando's published MD5s
# (github.com/zalandoresearch/fashion-mnist, README); the mirror's copies have their sizes.
FILES: dict[str, tuple[Remote, ...]] = {
    "mnist": (
        Remote(
            "mnist.npz",
            "sha256",
            "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
            11490434,
        ),
    ),
    "fashion_mnist": (
        Remote("train-labels-idx1-ubyte.gz", "md5", "25c81989df183df01b3e8a0aad5dffbe", 29515),
        Remote("train-images-idx3-ubyte.gz", "md5", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880),
        Remote("t10k-labels-idx1-ubyte.gz", "md5", "bb300cfdad3c16e7a12a480ee83cd310", 5148),
        Remote("t10k-images-idx3-ubyte.gz", "md5", "bef4ecab320f06d8554ea6380940ec79", 4422102),
    ),
}


def mirror() -> str:
    """The base URL files are downloaded from: $BN_DATA_MIRROR if set, else `MIRROR`."""
    base = os.environ.get("BN_DATA_MIRROR") or MIRROR
    return base if base.endswith("/") else base + "/"


def _new_hash(algorithm: str):
    # usedforsecurity=False: MD5 here checks integrity, and FIPS builds refuse it otherwise.
    return hashlib.new(algorithm, usedforsecurity=False)


def _matches(path: Path, remote: Remote) -> bool:
    """Whether `path` exists and has the published checksum."""
    if not path.is_file():
        return False
    hasher = _new_hash(remote.algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest() == remote.digest


def fetch(dataset: str, *, on_progress: Progress | None = None) -> Path:
    """Download `dataset` into the Keras cache unless a verified copy is there; return its path.

    The path is the npz file (mnist) or the folder of IDX files (fashion_mnist), which is also
    what `locate` returns afterwards. Files already in place with the published checksum are
    kept; the others are (re)downloaded. `on_progress(done_bytes, total_bytes)` is called as
    bytes arrive, counted over all the files still to download (total: their published sizes).
    Raises DatasetError for an unknown dataset or a checksum mismatch; urllib.error.URLError,
    TimeoutError or OSError when the mirror cannot be reached or the cache cannot be written.
    """
    check_name(dataset)
    target = keras_cache() / KERAS_LAYOUT[dataset]
    folder = target.parent if target.suffix == ".npz" else target
    todo = [r for r in FILES[dataset] if not _matches(folder / r.name, r)]
    total, done = sum(r.size for r in todo), 0
    for remote in todo:
        done = _fetch_one(remote, folder / remote.name, done, total, on_progress)
    return target


def _fetch_one(
    remote: Remote, dest: Path, done: int, total: int, on_progress: Progress | None
) -> int:
    """Stream one file to `dest` through a verified temporary file; return the new byte count."""
    url = mirror() + remote.name
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        # The folder is created (by atomic_path) only once the mirror answers, so a failed
        # connection leaves the cache as it was.
        with atomic_path(dest, suffix=".part") as tmp:
            hasher = _new_hash(remote.algorithm)
            with open(tmp, "wb") as out:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    hasher.update(chunk)
                    done += len(chunk)
                    if on_progress is not None:
                        on_progress(done, total)
            actual = hasher.hexdigest()
            if actual != remote.digest:  # raising here discards the temporary file
                raise DatasetError(
                    f"{remote.name} downloaded from {url} has {remote.algorithm} {actual}, "
                    f"expected {remote.digest}; discarded it. Retry, or set BN_DATA_MIRROR "
                    "to a mirror you trust"
                )
    return done
