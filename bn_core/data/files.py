"""Reading and validating dataset files: IDX (raw or gzipped) and Keras-format npz.

Every reader checks what it returns (shapes, dtypes, value ranges, matching counts) and
reports a problem as a one-line DatasetError naming the file, so that a corrupt copy is
never mistaken for a missing one. npz files are always read with allow_pickle=False.
"""

from __future__ import annotations

import gzip
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bn_core.messages import one_line

# Array names in a Keras-format npz, in RawData order.
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


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


def short(e: BaseException) -> str:
    """One-line, bounded description of an exception, with its type, for embedding in a
    DatasetError."""
    return one_line(e, 160, typed=True)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse one IDX file of unsigned bytes (gzipped or raw) into an array of its declared shape."""
    path = Path(path)
    try:
        data = path.read_bytes()
        # Trust the gzip magic as well as the name: some mirrors serve unpacked files named .gz.
        if path.name.endswith(".gz") or data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; EOFError: truncated
        raise DatasetError(f"{path}: cannot read/decompress ({short(e)}); re-download it") from e
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


def checked(arrays: list[np.ndarray], names: list[str], source: str) -> RawData:
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
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            arrays = [npz[k] for k in NPZ_KEYS if k in npz.files]
    except ValueError as e:  # what allow_pickle=False raises for object arrays
        reason = "holds object (pickled) arrays, refused" if "pickle" in str(e) else short(e)
        raise DatasetError(f"{path}: {reason}; re-save it with plain integer arrays") from e
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:  # truncated or damaged zip
        raise DatasetError(f"{path}: unreadable npz ({short(e)}); re-download it") from e
    if missing:
        keys = ", ".join(NPZ_KEYS)
        raise DatasetError(f"{path}: missing array(s) {', '.join(missing)}; expected {keys}")
    return checked(arrays, [f"{path}[{k}]" for k in NPZ_KEYS], source=f"npz file {path}")


def read_idx_set(paths: list[Path]) -> RawData:
    """Read four IDX files given in RawData order (x_train, y_train, x_test, y_test)."""
    arrays = [read_idx(p) for p in paths]
    return checked(arrays, [str(p) for p in paths], source=f"IDX files in {paths[0].parent}")
