"""Finding a dataset on disk, by existence checks only (nothing here parses a file).

The local places `load_raw` looks at, in order (the first hit wins):
  1. the explicit data folder (`data_dir` argument, else $BN_DATA_DIR):
     a Keras-format npz, the four IDX files, or the IDX files in a subfolder
  2. the Keras cache ($KERAS_HOME/datasets, else ~/.keras/datasets), in keras.datasets' layout
  3. the system folder (Debian's dataset-fashion-mnist package)
Each miss adds a short note to a 'tried' list, which becomes the not-found message.
"""

from __future__ import annotations

import os
from pathlib import Path

from bn_core.constants import DATASETS
from bn_core.data.files import DatasetError

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
