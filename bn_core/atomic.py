"""One way to write a file so that a reader never finds half of it (TF-free, at the bottom of
the package because every room writes files: data downloads, run artifacts, replay files).

``atomic_path`` hands out a temporary name in the target's own folder (so the final
``os.replace`` is a rename on one filesystem, atomic on POSIX and Windows) and either renames
it over the target or removes it, whatever happened in between.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
