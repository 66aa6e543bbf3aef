"""Shared fixtures: tiny synthetic datasets so unit tests train in seconds."""

from __future__ import annotations

import numpy as np
import pytest

from bn_core.data import Splits

F32_EPS = float(np.finfo(np.float32).eps)  # 1.19e-7


def f32_atol(magnitude: float, length: int, ulps: float = 4.0) -> float:
    """Absolute tolerance for two float32 computations of the same sum in different orders
    (another CPU's kernels, another batch size): each of its ``length`` terms of size up to
    ``magnitude`` can pick up a few rounding errors. ``ulps`` is that "few"."""
    return ulps * F32_EPS * max(length, 1) * float(magnitude)


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


def assert_runs_without_tensorflow(body: str, home) -> None:
    """Run ``body`` (Python source) in a fresh interpreter with BN_LAB_HOME=``home``, then
    fail unless it exits cleanly with neither TensorFlow nor Keras in sys.modules."""
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    script = textwrap.dedent(body) + textwrap.dedent(
        """
        import sys
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        print("LOADED", loaded)
        sys.exit(1 if loaded else 0)
        """
    )
    env = {**os.environ, "BN_LAB_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "LOADED []" in done.stdout
