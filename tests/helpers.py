"""Builders shared by several test files: result dicts, an MNIST-shaped npz, an event sink."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bn_core.config import TrainConfig


def result(
    variant: str,
    seed: int,
    val_acc: list[float],
    test_acc: float | None = None,
    *,
    run_id: int | None = None,
    status: str = "completed",
    steps_per_epoch: int | None = 100,
    history: dict[str, list[float]] | None = None,
    **config: Any,
) -> dict[str, Any]:
    """One run's result dict, as ``store.result_dicts`` and the CLI's results.json hold it.

    One epoch per ``val_acc`` entry, each with loss 1.0, accuracy 0.5, val_loss 1.0, 1 second
    and 100 images/s; ``history`` replaces any of those per-epoch lists. ``config`` holds
    TrainConfig fields besides variant and seed.
    """
    n = len(val_acc)
    return {
        "run_id": run_id,
        "variant": variant,
        "seed": seed,
        "status": status,
        "test_accuracy": test_acc,
        "test_loss": None,
        "steps_per_epoch": steps_per_epoch,
        "history": {
            "loss": [1.0] * n,
            "accuracy": [0.5] * n,
            "val_loss": [1.0] * n,
            "val_accuracy": list(val_acc),
            "seconds": [1.0] * n,
            "images_per_second": [100.0] * n,
            **(history or {}),
        },
        "config": TrainConfig(variant=variant, seed=seed, **config).to_dict(),
    }


def write_npz(folder: Path, n_train: int = 600, n_test: int = 100, seed: int = 0) -> Path:
    """A learnable MNIST-shaped ``folder/mnist.npz``: uint8 (N, 28, 28) noise, plus a bright
    2-row band whose position is the class. Returns the file's path."""
    rng = np.random.default_rng(seed)

    def part(n):
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        x = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(y):
            x[i, 2 * label + 4 : 2 * label + 6, 3:25] += 180
        return x, y

    x_train, y_train = part(n_train)
    x_test, y_test = part(n_test)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mnist.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


class Recorder:
    """An ``on_event`` sink that keeps every event."""

    def __init__(self):
        self.events: list[dict] = []

    def __call__(self, event):
        self.events.append(event)

    def of_type(self, kind):
        return [e for e in self.events if e["type"] == kind]
