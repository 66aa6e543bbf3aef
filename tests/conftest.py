"""Shared fixtures: tiny synthetic datasets so unit tests train in seconds."""

from __future__ import annotations

import numpy as np
import pytest

from bn_core.data import Splits


def make_splits(n_train: int = 256, n_val: int = 64, n_test: int = 64, seed: int = 0) -> Splits:
    """A learnable toy problem in LeNet's input format: the class is the bright quadrant/band.

    Images are float32 (N, 32, 32, 1) in [0, 1]; class k lights up the k-th of ten
    horizontal bands, plus noise, so a few epochs are enough to beat chance clearly.
    """
    rng = np.random.default_rng(seed)

    def part(n):
        y = rng.integers(0, 10, size=n).astype("int32")
        x = rng.uniform(0.0, 0.3, size=(n, 32, 32, 1)).astype("float32")
        for i, label in enumerate(y):
            x[i, 3 * label + 1 : 3 * label + 4, 2:30, 0] += 0.7
        return x, y

    x_train, y_train = part(n_train)
    x_val, y_val = part(n_val)
    x_test, y_test = part(n_test)
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test, source="synthetic")


@pytest.fixture(scope="session")
def tiny_splits() -> Splits:
    return make_splits()
