"""Files a run leaves on disk, written through ``bn_core.atomic.atomic_path`` (a reader never
finds half a file): result files of the CLI, a run's trained model, window-replay files."""

from __future__ import annotations

import os
from typing import Any

from bn_core.atomic import atomic_path


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_model(model: Any, path: str | os.PathLike) -> None:
    """``model.save(path)`` (a Keras model, ``.keras`` format) atomically."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
