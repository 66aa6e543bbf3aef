"""Which dataset the dashboard can train on, said in the dashboard's own words.

Finding data is cheap (``bn_core.data.locate``: existence checks only, then
``data.search.header_problem``: headers and sizes, a few ms), so the forms ask before every
Start instead of letting a run fail 4 s after it was queued, and a truncated or garbage copy
shows as "found but damaged", never as available. A data folder typed
into a form is never trusted as is: ``check_folder`` accepts only an absolute path to an
existing folder that itself holds the dataset's files. ``download`` wraps
``data.download.fetch`` for a "Download now" button with a progress bar.

No Streamlit and no TensorFlow here. ``bn_core.data`` is called through its module attributes
(``data.locate``, ``data.search.header_problem``, ``data.download.fetch``), which the tests
replace to simulate a machine that has, or lacks, a dataset.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bn_core import data
from bn_core.config import field_spec
from bn_core.constants import DATASETS
from bn_core.data.files import short
from bn_core.data.search import NPZ_NAMES
from bn_core.messages import one_line

# What else fixes a missing dataset, besides a download or a data folder.
OTHER_FIXES: dict[str, str] = {
    "mnist": "or pick fashion_mnist",
    "fashion_mnist": "or install it system-wide (`apt-get install dataset-fashion-mnist`)",
}
FOLDER_HELP = (
    "An absolute path to a folder holding {npz}, or the four IDX files (train-images, "
    "train-labels, t10k-images, t10k-labels; .gz or not) directly or in a {sub} subfolder. "
    "Runs queued here read their data from it. The same as starting the dashboard with "
    "BN_DATA_DIR set to it, or `bn-lab train --data-dir` on the command line. Leave empty to "
    "use the usual places (BN_DATA_DIR, the Keras cache, the system folder)."
)


def download_mb(dataset: str) -> int:
    """The published size of ``dataset``'s files, in MB."""
    return round(sum(r.size for r in data.download.FILES[dataset]) / 1e6)


def folder_help(dataset: str) -> str:
    return FOLDER_HELP.format(npz=NPZ_NAMES[dataset][0], sub=dataset.replace("_", "-"))


def dataset_status(dataset: str, data_dir: str | None = None) -> tuple[str, str]:
    """("local", "available locally at PATH"), ("damaged", "found but damaged: why"),
    ("download", what to do) or ("error", why).

    Never downloads and never raises: a bad $BN_DATA_DIR comes back as ("error", its message).
    """
    try:
        path = data.locate(dataset, data_dir)
    except (data.DatasetError, OSError) as e:
        return "error", one_line(e)
    if path is not None:
        if problem := data.search.header_problem(path):
            return "damaged", (
                f"found but damaged: {problem}. Replace it with a good copy, or delete it and "
                "download the dataset again."
            )
        return "local", f"available locally at {path}"
    return "download", (
        f"not on this machine yet. Download it now (~{download_mb(dataset)} MB), or put "
        f"{NPZ_NAMES[dataset][0]} or its four IDX files in a folder and enter that folder "
        f"under Data folder (like setting BN_DATA_DIR for the dashboard), "
        f"{OTHER_FIXES[dataset]}."
    )


def available(dataset: str, data_dir: str | None = None) -> bool:
    return dataset_status(dataset, data_dir)[0] == "local"


def default_dataset() -> str:
    """TrainConfig's default dataset if this machine has it, else the first one it has (else
    the default all the same, shown as unavailable)."""
    default = field_spec("dataset")["default"]
    return next((d for d in (default, *DATASETS) if available(d)), default)


def availability_help(folder_text: str | None = None) -> str:
    """The dataset field's help: TrainConfig's, then which datasets this machine has (in the
    usual places or the form's data folder, ``folder_text``, if it passes ``check_folder``).

    The options themselves stay plain names: a selectbox keeps showing the label its choice
    had when it was made, so a label that changes (after a download) would go stale."""
    here = {d: available(d, check_folder(folder_text, d)[0]) for d in DATASETS}
    missing = [d for d, ok in here.items() if not ok]
    text = f"{field_spec('dataset')['help']}. On this machine: "
    text += ", ".join(d for d, ok in here.items() if ok) or "none"
    return text + (f"; not yet: {', '.join(missing)}." if missing else ".")


def check_folder(text: str | None, dataset: str) -> tuple[str | None, str | None]:
    """(folder, None) for a data folder that holds ``dataset``, (None, None) for an empty
    field, else (None, why not). Only an absolute path to an existing folder that itself
    holds the files (or their usual subfolder) passes: nothing is looked up elsewhere."""
    text = (text or "").strip()
    if not text:
        return None, None
    folder = Path(text).expanduser()
    if not folder.is_absolute():
        return None, f"the data folder must be an absolute path, e.g. /data. Received: {text!r}"
    if not folder.is_dir():
        return None, f"the data folder does not exist or is not a folder. Received: {text!r}"
    try:
        hit = data.locate(dataset, folder)
    except (data.DatasetError, OSError) as e:
        return None, one_line(e)
    if hit is None or folder not in (Path(hit), Path(hit).parent):
        return None, (
            f"the data folder holds no {dataset}: no {NPZ_NAMES[dataset][0]} and not the four "
            f"IDX files. Received: {text!r}"
        )
    return str(folder), None


def data_problem(dataset: str, data_dir: str | None = None) -> str | None:
    """None when runs on ``dataset`` will find their data (in ``data_dir`` if given, a folder
    that passed ``check_folder``), else why not, in the forms' words."""
    kind, message = dataset_status(dataset, data_dir)
    if kind == "local":
        return None
    if kind == "download":
        return (
            f"{dataset} is not on this machine: download it or enter a data folder holding it "
            "(Train page, under Dataset) before Start."
        )
    if kind == "damaged":
        return f"{dataset} was {message}"
    return f"{dataset} cannot be found: {message}"


def progress_text(dataset: str, done: int, total: int) -> str:
    return f"{dataset}: {done / 1e6:.1f} of {total / 1e6:.1f} MB downloaded"


def download(
    dataset: str, on_progress: Callable[[int, int], None] | None = None
) -> tuple[str | None, str | None]:
    """Download ``dataset`` into the Keras cache: (where it is now, None), or (None, why the
    download failed and what else to do)."""
    try:
        path = data.download.fetch(dataset, on_progress=on_progress)
    except Exception as e:  # noqa: BLE001  (no network, HTTP error, checksum, full disk: all alike)
        return None, (
            f"The download of {dataset} from {data.download.mirror()} failed ({short(e)}). "
            f"Check the internet connection and try again, or enter a data folder holding "
            f"{NPZ_NAMES[dataset][0]} or its four IDX files, {OTHER_FIXES[dataset]}."
        )
    return str(path), None
