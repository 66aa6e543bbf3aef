"""MNIST / Fashion-MNIST loading: local files first, download only as a last resort.

Resolution order in `load_raw` (the first place that yields data wins):
  1. the explicit data folder (`data_dir` argument, else $BN_DATA_DIR):
     a Keras-format npz, the four IDX files, or the IDX files in a subfolder
  2. the Keras cache ($KERAS_HOME/datasets, else ~/.keras/datasets)
  3. the system folder (Debian's dataset-fashion-mnist package)
  4. keras.datasets.<name>.load_data(), which downloads into the Keras cache

A file that is found but corrupt is an error right away, never skipped: silently
training on a different copy of the data than the user pointed at is worse than failing.

This module must stay importable without TensorFlow (the UI imports it), so keras is
only imported inside `_download`, and npz files are always read with allow_pickle=False.
"""

from __future__ import annotations

import gzip
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bn_core.constants import DATASETS

# Debian's dataset-fashion-mnist package; MNIST has no distro package.
SYSTEM_DIRS: dict[str, str] = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}

_NPZ_NAMES = {"mnist": ("mnist.npz",), "fashion_mnist": ("fashion_mnist.npz", "fashion-mnist.npz")}
_SUBDIRS = {"mnist": ("mnist",), "fashion_mnist": ("fashion-mnist", "fashion_mnist")}
# (stem, idx kind) of the four files, in RawData order: x_train, y_train, x_test, y_test.
_IDX_FILES = (("train-images", 3), ("train-labels", 1), ("t10k-images", 3), ("t10k-labels", 1))
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_PAD = 2  # 28x28 -> 32x32, the input size LeNet-style models expect


class DatasetError(Exception):
    """A dataset could not be found or is corrupt.

    str(e) is ONE line saying what is wrong and how to fix it, fit for a CLI or UI to show as is.
    """


@dataclass(frozen=True)
class RawData:
    """Images and labels exactly as stored: uint8 images (N, 28, 28), integer labels (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # where it came from, for logs and the UI


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


# ----------------------------------------------------------------------------- parsing


def _short(e: BaseException) -> str:
    """One-line, bounded description of an exception, for embedding in a DatasetError."""
    lines = str(e).strip().splitlines()
    text = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse one IDX file of unsigned bytes (gzipped or raw) into an array of its declared shape."""
    path = Path(path)
    try:
        data = path.read_bytes()
        # Trust the gzip magic as well as the name: some mirrors serve unpacked files named .gz.
        if path.name.endswith(".gz") or data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; EOFError: truncated
        raise DatasetError(f"{path}: cannot read/decompress ({_short(e)}); re-download it") from e
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise DatasetError(f"{path}: not an IDX file (bad magic {data[:4].hex() or 'empty'})")
    if data[2] != 0x08:
        raise DatasetError(f"{path}: IDX type 0x{data[2]:02x}; only 0x08 (ubyte) is supported")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DatasetError(f"{path}: IDX header is truncated or declares {ndim} dimensions")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise DatasetError(
            f"{path}: {len(data)} bytes, header {shape} implies {expected} (truncated or corrupt)"
        )
    # copy(): frombuffer views the immutable bytes object, and callers expect a writable array.
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def _check_images(x: np.ndarray, name: str) -> np.ndarray:
    """Validate one image array (N, 28, 28) of integers 0..255; return it as uint8."""
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DatasetError(f"{name}: images have shape {x.shape}, expected (N, 28, 28)")
    if not np.issubdtype(x.dtype, np.integer):
        raise DatasetError(f"{name}: images have dtype {x.dtype}, expected an integer type (uint8)")
    if x.dtype != np.uint8 and x.size and (x.min() < 0 or x.max() > 255):
        raise DatasetError(f"{name}: pixel values outside 0..255")
    return x.astype(np.uint8, copy=False)


def _check_labels(y: np.ndarray, name: str) -> np.ndarray:
    """Validate one label array (N,) of integers 0..9."""
    if y.ndim != 1:
        raise DatasetError(f"{name}: labels have shape {y.shape}, expected (N,)")
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{name}: labels have dtype {y.dtype}, expected an integer type")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DatasetError(f"{name}: labels range {y.min()}..{y.max()}, expected 0..9")
    return y


def _checked(arrays: list[np.ndarray], names: list[str], source: str) -> RawData:
    """Validate x_train, y_train, x_test, y_test (named for error messages) and wrap them."""
    x_tr, y_tr, x_te, y_te = arrays
    x_tr, x_te = _check_images(x_tr, names[0]), _check_images(x_te, names[2])
    y_tr, y_te = _check_labels(y_tr, names[1]), _check_labels(y_te, names[3])
    for (x, y), (nx, ny) in (((x_tr, y_tr), names[:2]), ((x_te, y_te), names[2:])):
        if len(x) != len(y):
            raise DatasetError(f"{nx} has {len(x)} images but {ny} has {len(y)} labels")
        if len(x) == 0:
            raise DatasetError(f"{nx}: contains no images")
    return RawData(x_tr, y_tr, x_te, y_te, source=source)


def read_npz(path: str | os.PathLike) -> RawData:
    """Read a Keras-format npz (x_train, y_train, x_test, y_test). Never unpickles."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            # Checked first because numpy reports any non-zip file as "pickled data".
            if f.read(2) != b"PK":
                raise DatasetError(f"{path}: not an npz (zip) archive")
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in _NPZ_KEYS if k not in npz.files]
            arrays = [npz[k] for k in _NPZ_KEYS if k in npz.files]
    except ValueError as e:  # what allow_pickle=False raises for object arrays
        reason = "holds object (pickled) arrays, refused" if "pickle" in str(e) else _short(e)
        raise DatasetError(f"{path}: {reason}; re-save it with plain integer arrays") from e
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:  # truncated or damaged zip
        raise DatasetError(f"{path}: unreadable npz ({_short(e)}); re-download it") from e
    if missing:
        keys = ", ".join(_NPZ_KEYS)
        raise DatasetError(f"{path}: missing array(s) {', '.join(missing)}; expected {keys}")
    return _checked(arrays, [f"{path}[{k}]" for k in _NPZ_KEYS], source=f"npz file {path}")


def _read_idx_set(paths: list[Path]) -> RawData:
    """Read the four IDX files found by `_scan_idx` (in RawData order)."""
    arrays = [read_idx(p) for p in paths]
    return _checked(arrays, [str(p) for p in paths], source=f"IDX files in {paths[0].parent}")


# ----------------------------------------------------------------------------- finding


def _check_name(dataset: str) -> None:
    if dataset not in DATASETS:
        raise DatasetError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")


def _scan_idx(folder: Path) -> tuple[list[Path], list[str]]:
    """The IDX files present in `folder` (raw or .gz, dashed or dotted names), and those missing."""
    found, missing = [], []
    for stem, ndim in _IDX_FILES:
        names = [f"{stem}{sep}idx{ndim}-ubyte{gz}" for sep in ("-", ".") for gz in ("", ".gz")]
        hit = next((folder / n for n in names if (folder / n).is_file()), None)
        if hit is None:
            missing.append(f"{stem}-idx{ndim}-ubyte[.gz]")
        else:
            found.append(hit)
    return found, missing


def _idx_note(folder: Path) -> tuple[Path | None, str]:
    """(folder, "") if it holds all four IDX files, else (None, a note for the 'tried' list)."""
    if not folder.is_dir():
        return None, f"{folder} (missing)"
    found, missing = _scan_idx(folder)
    if not missing:
        return folder, ""
    if found:  # a half-copied dataset deserves a specific hint
        return None, f"{folder} (incomplete: no {', '.join(missing)})"
    return None, f"{folder} (no IDX files)"


def _keras_cache() -> Path:
    """Where keras.datasets caches downloads; mirrors keras' own $KERAS_HOME / ~/.keras rule."""
    return Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser() / "datasets"


def _find_local(dataset: str, data_dir: str | os.PathLike | None) -> tuple[Path | None, list[str]]:
    """Steps 1-3 by existence checks only: (npz file or IDX folder, or None), what was tried."""
    _check_name(dataset)
    tried: list[str] = []

    # 1. Explicit folder. A wrong path is a typo to report, not a reason to look elsewhere.
    if data_dir is not None:
        folder, label = Path(data_dir).expanduser(), "data_dir"
    elif os.environ.get("BN_DATA_DIR"):
        folder, label = Path(os.environ["BN_DATA_DIR"]).expanduser(), "BN_DATA_DIR"
    else:
        folder, label = None, ""
        tried.append("BN_DATA_DIR (unset)")
    if folder is not None:
        if not folder.is_dir():
            raise DatasetError(
                f"{label} {folder} does not exist or is not a folder; "
                f"pass a folder holding {_NPZ_NAMES[dataset][0]} or the four IDX files"
            )
        for name in _NPZ_NAMES[dataset]:
            if (folder / name).is_file():
                return folder / name, tried
        near_misses = []
        for sub in (folder, *(folder / s for s in _SUBDIRS[dataset])):
            hit, note = _idx_note(sub)
            if hit is not None:
                return hit, tried
            if "incomplete" in note:  # only near-misses are worth the space in the message
                near_misses.append(note)
        npz = _NPZ_NAMES[dataset][0]
        detail = "; ".join([f"no {npz}", *near_misses]) if near_misses else f"no {npz} or IDX files"
        tried.append(f"{label} {folder} ({detail})")

    # 2. Keras cache, in the layout keras.datasets itself writes.
    cache = _keras_cache()
    if dataset == "mnist":
        if (cache / "mnist.npz").is_file():
            return cache / "mnist.npz", tried
        tried.append(f"{cache / 'mnist.npz'} (missing)")
    else:
        hit, note = _idx_note(cache / "fashion-mnist")
        if hit is not None:
            return hit, tried
        tried.append(note)

    # 3. system-wide copy from a distro package.
    system = SYSTEM_DIRS.get(dataset)
    if system:
        hit, note = _idx_note(Path(system))
        if hit is not None:
            return hit, tried
        tried.append(note)
    return None, tried


def locate(dataset: str, data_dir: str | os.PathLike | None = None) -> str | None:
    """Where `dataset` would be loaded from without downloading (npz file or IDX folder), else None.

    Cheap (existence checks only, nothing is parsed), so a corrupt file still shows up here and
    only fails in `load_raw`. Raises DatasetError for an unknown dataset or a missing data_dir.
    """
    hit, _ = _find_local(dataset, data_dir)
    return None if hit is None else str(hit)


def _download(dataset: str) -> RawData:
    """Download via keras.datasets (it caches into the Keras cache). Tests replace this."""
    import keras  # lazy on purpose: importing this module must never load TensorFlow

    module = keras.datasets.mnist if dataset == "mnist" else keras.datasets.fashion_mnist
    (x_train, y_train), (x_test, y_test) = module.load_data()
    source = f"keras.datasets.{dataset} download (cached in {_keras_cache()})"
    return RawData(x_train, y_train, x_test, y_test, source=source)


def load_raw(
    dataset: str, data_dir: str | os.PathLike | None = None, *, allow_download: bool = True
) -> RawData:
    """Load `dataset` as stored (uint8 images, integer labels); search order in the module doc."""
    hit, tried = _find_local(dataset, data_dir)
    if hit is not None:
        return read_npz(hit) if hit.is_file() else _read_idx_set(_scan_idx(hit)[0])

    if not allow_download:
        tried.append("download (disabled)")
    else:
        try:
            raw = _download(dataset)
        except Exception as e:  # noqa: BLE001  (no network, no keras, HTTP error: all alike)
            tried.append(f"download (failed: {_short(e)})")
        else:
            names = [f"downloaded {k}" for k in _NPZ_KEYS]
            return _checked([raw.x_train, raw.y_train, raw.x_test, raw.y_test], names, raw.source)

    npz = _NPZ_NAMES[dataset][0]
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
