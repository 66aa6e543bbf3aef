"""Finding a dataset on disk by existence checks, and telling a damaged copy from a good one
by its headers alone (``header_problem``: no image is read).

The local places `load_raw` looks at, in order (the first hit wins):
  1. the explicit data folder (`data_dir` argument, else $BN_DATA_DIR):
     a Keras-format npz, the four IDX files, or the IDX files in a subfolder
  2. the Keras cache ($KERAS_HOME/datasets, else ~/.keras/datasets), in keras.datasets' layout
  3. the system folder (Debian's dataset-fashion-mnist package)
Each miss adds a short note to a 'tried' list, which becomes the not-found message.

``find_local`` and ``locate`` only check that files exist, so a corrupt copy is found like a
good one; ``header_problem`` then says, in a few reads of a few hundred bytes, whether it is
damaged: a truncated or garbage file, an IDX header with the wrong magic or dimensions or a
size that does not match them, an npz that is no zip, lacks an array or holds wrong shapes.
What it cannot see (flipped bytes inside the pixels, a zip member's CRC) ``files`` catches
when the data are read.
"""

from __future__ import annotations

import gzip
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from bn_core.constants import DATASETS
from bn_core.data.files import NPZ_KEYS, DatasetError, short

# Debian's dataset-fashion-mnist package; MNIST has no distro package.
SYSTEM_DIRS: dict[str, str] = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}
# Where keras.datasets keeps each dataset inside its cache: an npz file or a folder of IDX
# files. `download` writes the same layout, so copies fetched by either are found here.
KERAS_LAYOUT = {"mnist": "mnist.npz", "fashion_mnist": "fashion-mnist"}

NPZ_NAMES = {"mnist": ("mnist.npz",), "fashion_mnist": ("fashion_mnist.npz", "fashion-mnist.npz")}
_SUBDIRS = {"mnist": ("mnist",), "fashion_mnist": ("fashion-mnist", "fashion_mnist")}
# (stem, idx kind) of the four files, in RawData order: x_train, y_train, x_test, y_test.
_IDX_FILES = (("train-images", 3), ("train-labels", 1), ("t10k-images", 3), ("t10k-labels", 1))


def check_name(dataset: str) -> None:
    """Raise DatasetError unless `dataset` is one of DATASETS."""
    if dataset not in DATASETS:
        raise DatasetError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")


def keras_cache() -> Path:
    """Where keras.datasets caches downloads; mirrors keras' own $KERAS_HOME / ~/.keras rule."""
    return Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser() / "datasets"


def scan_idx(folder: Path) -> tuple[list[Path], list[str]]:
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
    found, missing = scan_idx(folder)
    if not missing:
        return folder, ""
    if found:  # a half-copied dataset deserves a specific hint
        return None, f"{folder} (incomplete: no {', '.join(missing)})"
    return None, f"{folder} (no IDX files)"


def find_local(dataset: str, data_dir: str | os.PathLike | None) -> tuple[Path | None, list[str]]:
    """Steps 1-3 by existence checks only: (npz file or IDX folder, or None), what was tried."""
    check_name(dataset)
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
                f"pass a folder holding {NPZ_NAMES[dataset][0]} or the four IDX files"
            )
        for name in NPZ_NAMES[dataset]:
            if (folder / name).is_file():
                return folder / name, tried
        near_misses = []
        for sub in (folder, *(folder / s for s in _SUBDIRS[dataset])):
            hit, note = _idx_note(sub)
            if hit is not None:
                return hit, tried
            if "incomplete" in note:  # only near-misses are worth the space in the message
                near_misses.append(note)
        npz = NPZ_NAMES[dataset][0]
        detail = "; ".join([f"no {npz}", *near_misses]) if near_misses else f"no {npz} or IDX files"
        tried.append(f"{label} {folder} ({detail})")

    # 2. Keras cache, in the layout keras.datasets itself writes.
    cached = keras_cache() / KERAS_LAYOUT[dataset]
    if cached.suffix == ".npz":
        if cached.is_file():
            return cached, tried
        tried.append(f"{cached} (missing)")
    else:
        hit, note = _idx_note(cached)
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
    hit, _ = find_local(dataset, data_dir)
    return None if hit is None else str(hit)


# ----------------------------------------------------------------------------- damage


def header_problem(hit: str | os.PathLike) -> str | None:
    """Why the dataset at ``hit`` (an npz file or a folder of the four IDX files, as
    ``locate`` returns it) is damaged, judged from headers and sizes only; None when they are
    sound. One line naming the file; never raises for a bad file."""
    path = Path(hit)
    try:
        shapes = _npz_shapes(path) if path.is_file() else _idx_shapes(path)
        _check_shapes(shapes)
    except DatasetError as e:
        return str(e)
    except (OSError, EOFError, ValueError, zlib.error, zipfile.BadZipFile) as e:
        return f"{path}: unreadable ({short(e)})"
    return None


def _check_shapes(shapes: list[tuple[str, tuple[int, ...]]]) -> None:
    """(name, shape) of x_train, y_train, x_test, y_test: (N, 28, 28) images, (N,) labels."""
    for (x_name, x), (y_name, y) in (shapes[:2], shapes[2:]):
        if len(x) != 3 or x[1:] != (28, 28):
            raise DatasetError(f"{x_name}: images of shape {x}, expected (N, 28, 28)")
        if len(y) != 1:
            raise DatasetError(f"{y_name}: labels of shape {y}, expected (N,)")
        if x[0] != y[0] or x[0] == 0:
            raise DatasetError(f"{x_name} has {x[0]} images but {y_name} has {y[0]} labels")


def _npz_shapes(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    """The four arrays' shapes from the zip's directory and each .npy header (a few hundred
    bytes each), checking each member's size against its header."""
    with open(path, "rb") as f:
        if f.read(2) != b"PK":  # numpy would call any other file "pickled data"
            raise DatasetError(f"{path}: not an npz (zip) archive")
    with np.load(path, allow_pickle=False) as npz:  # reads the zip directory only
        missing = [k for k in NPZ_KEYS if k not in npz.files]
        if missing:
            raise DatasetError(f"{path}: missing array(s) {', '.join(missing)}")
        return [(f"{path}[{k}]", _npy_shape(npz.zip, f"{k}.npy", path)) for k in NPZ_KEYS]


def _npy_shape(archive: zipfile.ZipFile, member: str, path: Path) -> tuple[int, ...]:
    info = archive.getinfo(member)
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }.get(version)
        if read_header is None:
            raise DatasetError(f"{path}[{member}]: .npy format {version} is not supported")
        shape, _, dtype = read_header(f, max_header_size=10000)
        header = f.tell()
    if dtype.hasobject or dtype.kind not in "iu":
        raise DatasetError(f"{path}[{member}]: dtype {dtype}, expected integers (uint8)")
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if info.file_size != expected:
        raise DatasetError(
            f"{path}[{member}]: {info.file_size} bytes, header {shape} implies {expected}"
        )
    return tuple(int(d) for d in shape)


def _idx_shapes(folder: Path) -> list[tuple[str, tuple[int, ...]]]:
    found, missing = scan_idx(folder)
    if missing:  # vanished since it was found
        raise DatasetError(f"{folder}: no {', '.join(missing)}")
    return [(str(p), _idx_shape(p, ndim)) for p, (_, ndim) in zip(found, _IDX_FILES, strict=True)]


def _idx_shape(path: Path, ndim: int) -> tuple[int, ...]:
    """An IDX file's shape from its header, and its (uncompressed) size checked against it:
    the file's size, or a gzip file's ISIZE trailer (its length mod 2**32)."""
    with open(path, "rb") as f:
        packed = f.read(2) == b"\x1f\x8b"
    header_size = 4 + 4 * ndim
    if packed:
        with gzip.open(path, "rb") as f:
            header = f.read(header_size)
        with open(path, "rb") as f:
            f.seek(-4, os.SEEK_END)
            size = int.from_bytes(f.read(4), "little")  # ISIZE: the length mod 2**32
    else:
        with open(path, "rb") as f:
            header = f.read(header_size)
        size = path.stat().st_size
    if len(header) < 4 or header[:3] != b"\x00\x00\x08" or header[3] != ndim:
        raise DatasetError(
            f"{path}: not an IDX file of {ndim}-D unsigned bytes "
            f"(magic {header[:4].hex() or 'missing: empty file'})"
        )
    if len(header) < header_size:
        raise DatasetError(f"{path}: IDX header is truncated")
    shape = tuple(int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header_size + int(np.prod(shape, dtype=np.int64))
    if size != (expected % 2**32 if packed else expected):
        what = "uncompressed size" if packed else "size"
        raise DatasetError(
            f"{path}: {what} {size} bytes, header {shape} implies {expected} (truncated or corrupt)"
        )
    return shape


def files_stamp(hit: str | os.PathLike) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime) of the file ``hit`` names, or of the folder's files: it changes
    when they do (a standby worker and the Ray backend keep read datasets while it holds)."""
    hit = Path(hit)
    paths = sorted(hit.iterdir()) if hit.is_dir() else [hit]
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths if p.is_file())
