"""MNIST / Fashion-MNIST loading: local files first, download only as a last resort.

Resolution order in `load_raw` (the first place that yields data wins):
  1. the explicit data folder (`data_dir` argument, else $BN_DATA_DIR):
     a Keras-format npz, the four IDX files, or the IDX files in a subfolder
  2. the Keras cache ($KERAS_HOME/datasets, else ~/.keras/datasets)
  3. the system folder (Debian's dataset-fashion-mnist package)
  4. a checksum-verified download into the Keras cache (from $BN_DATA_MIRROR if set)

A file that is found but corrupt is an error right away, never skipped: silently
training on a different copy of the data than the user pointed at is worse than failing.

The package is split by concern: `files` reads and validates npz / IDX files, `search` finds
them (steps 1-3), `download` fetches them (step 4; `download.fetch(dataset, on_progress=...)`
downloads ahead of time with progress reports). It never imports TensorFlow or Keras
(the UI imports it), and npz files are always read with allow_pickle=False.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bn_core.constants import DATASETS
from bn_core.data import download
from bn_core.data.files import DatasetError, RawData, read_idx, read_idx_set, read_npz, short
from bn_core.data.search import NPZ_NAMES, find_local, locate, scan_idx

__all__ = [
    "DATASETS",
    "DatasetError",
    "RawData",
    "Splits",
    "load",
    "load_raw",
    "locate",
    "prepare",
    "read_idx",
    "read_npz",
]

_PAD = 2  # 28x28 -> 32x32, the input size LeNet-style models expect


@dataclass(frozen=True)
class Splits:
    """Model-ready arrays: float32 images (N, 32, 32, 1) in [0, 1], int32 labels (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray  # 0 rows when val_size == 0
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def _read(hit: Path) -> RawData:
    """Read what `find_local` or `download.fetch` pointed at: an npz file or an IDX folder."""
    return read_npz(hit) if hit.is_file() else read_idx_set(scan_idx(hit)[0])


def load_raw(
    dataset: str, data_dir: str | os.PathLike | None = None, *, allow_download: bool = True
) -> RawData:
    """Load `dataset` as stored (uint8 images, integer labels); search order in the module doc."""
    hit, tried = find_local(dataset, data_dir)
    if hit is not None:
        return _read(hit)

    if not allow_download:
        tried.append("download (disabled)")
    else:
        try:
            # Through the module attribute, so that tests can replace the hook.
            target = download.fetch(dataset)
        except DatasetError:
            raise  # arrived corrupt (checksum mismatch): an error, like a corrupt local file
        except Exception as e:  # noqa: BLE001  (no network, HTTP error, full disk: all alike)
            tried.append(f"download (failed: {short(e)})")
        else:
            raw = _read(target)
            source = f"{dataset} download from {download.mirror()} (cached in {target})"
            return dataclasses.replace(raw, source=source)

    npz = NPZ_NAMES[dataset][0]
    other = (
        ", or choose --dataset fashion_mnist (apt-get install dataset-fashion-mnist)"
        if dataset == "mnist"
        else ", or apt-get install dataset-fashion-mnist"
    )
    raise DatasetError(
        f"{dataset} not found: tried {', '.join(tried)}. Fix: connect to the internet, or put "
        f"{npz} or the four IDX files in a folder and pass --data-dir / set BN_DATA_DIR{other}."
    )


# ----------------------------------------------------------------------------- preparing


def _to_model_images(x: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 32, 32, 1) in [0, 1], zero-padded by 2 on each side."""
    out = np.zeros((len(x), 28 + 2 * _PAD, 28 + 2 * _PAD, 1), dtype=np.float32)
    out[:, _PAD:-_PAD, _PAD:-_PAD, 0] = x  # casts in place: no float64 temporary of the whole set
    out /= 255.0
    return out


def prepare(
    raw: RawData, *, val_size: int = 9000, train_limit: int | None = None, seed: int = 0
) -> Splits:
    """Split a seeded validation set off the training rows, optionally cap training, and convert.

    The official test set is kept whole. The split is a permutation by np.random.default_rng(seed):
    its first `val_size` indices are validation, the rest training, of which the first `train_limit`
    are kept (all of them when train_limit exceeds what is left).
    """
    n = len(raw.x_train)
    if val_size < 0 or val_size >= n:
        raise DatasetError(
            f"val_size must be in 0..{n - 1} (this dataset has {n} training images), got "
            f"{val_size}; lower --val-size"
        )
    if train_limit is not None and train_limit < 1:
        raise ValueError(f"train_limit must be at least 1 (or None for all), got {train_limit}")

    perm = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    if train_limit is not None:
        train_idx = train_idx[:train_limit]

    return Splits(
        x_train=_to_model_images(raw.x_train[train_idx]),
        y_train=raw.y_train[train_idx].astype(np.int32),
        x_val=_to_model_images(raw.x_train[val_idx]),
        y_val=raw.y_train[val_idx].astype(np.int32),
        x_test=_to_model_images(raw.x_test),
        y_test=raw.y_test.astype(np.int32),
        source=raw.source,
    )


def load(
    dataset: str,
    data_dir: str | os.PathLike | None = None,
    *,
    val_size: int = 9000,
    train_limit: int | None = None,
    seed: int = 0,
    allow_download: bool = True,
) -> Splits:
    """`prepare(load_raw(...))`: find, validate and split a dataset in one call."""
    raw = load_raw(dataset, data_dir, allow_download=allow_download)
    return prepare(raw, val_size=val_size, train_limit=train_limit, seed=seed)
