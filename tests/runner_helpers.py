"""Runs for the tests that start real workers (the local runner, the Ray cluster): a random
MNIST file, a run that finishes in seconds and one that never does, and waiting with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bn_core.config import TrainConfig

DEADLINE = 120.0  # seconds; generous, the machine is shared and small


def wait_for(
    predicate: Callable[[], Any],
    what: str,
    *,
    timeout: float = DEADLINE,
    interval: float = 0.1,
    describe: Callable[[], str] | None = None,
    tick: Callable[[], None] | None = None,
) -> Any:
    """Poll until ``predicate()`` is truthy and return it; fail with context at the deadline."""
    end = time.monotonic() + timeout
    while True:
        if tick is not None:
            tick()
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            detail = describe() if describe else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{detail}")
        time.sleep(interval)


def write_mnist(folder: Path, n_train: int = 600, n_test: int = 100, seed: int = 0) -> Path:
    """A Keras-format mnist.npz of random images (learning is not what these tests check)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / "mnist.npz",
        x_train=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, n_train, dtype=np.uint8),
        x_test=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, n_test, dtype=np.uint8),
    )
    return folder


def quick_config(data_dir: Path, **changes) -> TrainConfig:
    """A run that finishes a few seconds after its worker has started (once TensorFlow has
    loaded); ``changes`` may replace any of its settings."""
    values = {"val_size": 100, "epochs": 1, "batch_size": 32, "train_limit": 64, **changes}
    return TrainConfig(data_dir=str(data_dir), **values)


def long_config(data_dir: Path, **changes) -> TrainConfig:
    """A run far longer than any test waits for: it is always stopped by the test."""
    values = {"val_size": 100, "epochs": 200, "batch_size": 32, "train_limit": 480, **changes}
    return TrainConfig(data_dir=str(data_dir), **values)
