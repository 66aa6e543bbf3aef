"""Small synthetic MNIST-style dataset files for the dataset tests: random arrays, IDX files
(plain or gzipped, with the archives' dotted names or not) and an npz of given arrays."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
KEYS = ("x_train", "y_train", "x_test", "y_test")


def make_arrays(n_train: int = 50, n_test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """Random uint8 images and 0..9 labels. Pixel [0, 0] of training image i holds i, which makes
    the rows of a split traceable back to their source index."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    arrays["x_train"][:, 0, 0] = np.arange(n_train)
    return arrays


def idx_bytes(arr: np.ndarray, type_byte: int = 0x08) -> bytes:
    """Serialize an array in IDX format: 0x0000, type, ndim, big-endian uint32 sizes, data."""
    header = b"\x00\x00" + bytes([type_byte, arr.ndim]) + np.array(arr.shape, dtype=">u4").tobytes()
    return header + arr.astype(np.uint8).tobytes()


def write_idx(path: Path, arr: np.ndarray, **kwargs) -> Path:
    raw = idx_bytes(arr, **kwargs)
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def write_idx_set(
    folder: Path, arrays: dict, *, gz: bool = False, dotted: bool = False
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, key in zip(IDX_NAMES, KEYS, strict=True):
        if dotted:  # how the original MNIST archives unzip: train-images.idx3-ubyte
            name = name.replace("-idx", ".idx")
        paths.append(write_idx(folder / (name + (".gz" if gz else "")), arrays[key]))
    return paths


def write_arrays_npz(path: Path, arrays: dict) -> Path:
    """``arrays`` saved as the npz file ``path`` (its folders made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path
