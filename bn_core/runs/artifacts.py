"""Files a run leaves on disk, written atomically: a reader never finds half a file.

One helper, ``atomic_path``, serves every writer: result files of the CLI, a run's trained
model, window-replay files. It hands out a temporary name in the target's own folder (so the
final ``os.replace`` is a rename on one filesystem, atomic on POSIX and Windows) and either
renames it over the target or removes it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else remove it.

    ``suffix`` ends the temporary name (Keras refuses to save a model to a name not ending in
    ``.keras``). The file is made readable by others (0644): results are meant to be shared.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX + suffix
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_model(model: Any, path: str | os.PathLike) -> None:
    """``model.save(path)`` (a Keras model, ``.keras`` format) atomically."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
