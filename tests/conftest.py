"""Shared fixtures: tiny synthetic datasets so unit tests train in seconds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from bn_core.data import Splits

# The test files whose assertions compare TensorFlow's float32 numbers with a reference (numpy,
# Keras' own BatchNormalization, a second run): oneDNN sums in another order on another CPU
# (AVX2 or SSE4.1 instead of AVX-512), so CI also runs these with ONEDNN_MAX_CPU_ISA=AVX2.
NUMERIC_MODULES = (
    "test_checkpoint",
    "test_layers",
    "test_models",
    "test_probes",
    "test_replay",
    "test_training",
)


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.stem in NUMERIC_MODULES:
            item.add_marker(pytest.mark.numeric)


F32_EPS = float(np.finfo(np.float32).eps)  # 1.19e-7
F64_EPS = float(np.finfo(np.float64).eps)  # 2.22e-16


def f32_atol(magnitude: float, length: int, ulps: float = 4.0) -> float:
    """Absolute tolerance for two float32 computations of the same sum in different orders
    (another CPU's kernels, another batch size): each of its ``length`` terms of size up to
    ``magnitude`` can pick up a few rounding errors. ``ulps`` is that "few".

    ``magnitude`` is in the result's units: for a mean, the mean |term| (or the largest);
    for a sum, the sum of the |terms|. Both are what the result would be if no term cancelled,
    which is what summation errors scale with."""
    return ulps * F32_EPS * max(length, 1) * float(magnitude)


def f32_rtol(length: int, ulps: float = 4.0) -> float:
    """``f32_atol`` in units of the value itself: for a value that is a product of roundings
    (no cancellation), or a sum of terms of one sign (a variance, a sum of squares)."""
    return f32_atol(1.0, length, ulps)


def f64_atol(magnitude: float, length: int, ulps: float = 4.0) -> float:
    """``f32_atol`` for float64 computations (TensorFlow's float64 kernels against numpy's):
    they too sum in another order on another CPU."""
    return ulps * F64_EPS * max(length, 1) * float(magnitude)


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


TF_ROOTS = ("tensorflow", "keras", "tf_keras")  # top-level packages that load TensorFlow


def assert_runs_without_tensorflow(
    body: str, home=None, env: Mapping[str, str | None] | None = None
) -> subprocess.CompletedProcess:
    """Run ``body`` (Python source) in a fresh interpreter from the repository root, then fail
    unless it exits cleanly with no module of TF_ROOTS in sys.modules.

    ``home`` (if given) becomes BN_LAB_HOME; ``env`` sets further variables, or removes those
    mapped to None. Returns the finished process: its stdout ends with the line ``LOADED []``.
    """
    root = Path(__file__).resolve().parent.parent
    script = textwrap.dedent(body) + textwrap.dedent(
        f"""
        import sys
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {TF_ROOTS!r})
        print("LOADED", loaded)
        sys.exit(1 if loaded else 0)
        """
    )
    full_env = dict(os.environ)
    if home is not None:
        full_env["BN_LAB_HOME"] = str(home)
    for name, value in (env or {}).items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "LOADED []" in done.stdout
    return done
