"""One way to write a file so that a reader never finds half of it (TF-free, at the bottom of
the package because every room writes files: data downloads, run artifacts, replay files).

``atomic_path`` hands out a temporary name in the target's own folder (so the final
``os.replace`` is a rename on one filesystem, atomic on POSIX and Windows) and either renames
it over the target or removes it, whatever happened in between. Only a process killed in
between (SIGKILL, a power cut) leaves its temporary file behind: the name carries the
writer's pid, and ``remove_partials`` deletes those whose writer is gone.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

TMP_SUFFIX = ".tmp"
# .{target name}.{writer's pid}.{random}.tmp{suffix}, as atomic_path names them; before the
# pid was part of the name (stores without a schema version): .{target name}.{random}.tmp{suffix}.
_PARTIAL = re.compile(r"^\..+\.(\d+)\.[^.]+" + re.escape(TMP_SUFFIX) + r"(\.\w+)?$")
_OLD_PARTIAL = re.compile(r"^\..+\.[^.]+" + re.escape(TMP_SUFFIX) + r"(\.\w+)?$")
OLD_PARTIAL_AGE = 3600.0  # seconds: an old-style partial file (no pid) this old is abandoned


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else remove it.

    ``suffix`` ends the temporary name (Keras refuses to save a model to a name not ending in
    ``.keras``). The file is made readable by others (0644): results are meant to be shared.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX + suffix
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_partials(folder: str | os.PathLike, min_age: float = 60.0) -> list[Path]:
    """Delete the temporary files ``atomic_path`` left in ``folder`` when its writer was killed:
    those whose writer's pid no longer exists and that are older than ``min_age`` seconds
    (a pid the OS has reused keeps a file until that process ends too), and those named
    without a pid (older versions) once older than ``OLD_PARTIAL_AGE``. Returns them."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _PARTIAL.match(entry.name)
        legacy = match is None and _OLD_PARTIAL.match(entry.name) is not None
        if (match is None and not legacy) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if legacy:
            abandoned = age > max(min_age, OLD_PARTIAL_AGE)
        else:
            abandoned = age > min_age and not psutil.pid_exists(int(match.group(1)))
        if abandoned:
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
    return removed
