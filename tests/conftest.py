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

# The skip policy (tests/skip_policy.py): with CI=true a skipped or xfailed test that
# tests/allowed_skips.py does not list fails the run. Its hooks, registered by being here.
from tests.skip_policy import pytest_addoption, pytest_configure  # noqa: F401

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


# ----------------------------------------------------------------------------- the dashboard


@pytest.fixture
def runner(tmp_path, monkeypatch):
    """A JobRunner over a fresh store (tmp_path/home) whose backend starts nothing
    (tests.helpers.RecordingBackend), given to the pages in place of the real one."""
    import streamlit as st

    from bn_core.runs.execution.runner import JobRunner
    from bn_core.runs.store.run_store import RunStore
    from pages import _runner
    from tests.helpers import RecordingBackend

    home = tmp_path / "home"
    monkeypatch.setenv("BN_LAB_HOME", str(home))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # a shell's cluster stays out of these
    st.cache_resource.clear()  # no runner cached by an earlier test (or a real one) leaks in
    fake = JobRunner(RunStore(home), backend=RecordingBackend())  # never .start()ed
    monkeypatch.setattr(_runner, "get_runner", lambda: fake)
    yield fake
    st.cache_resource.clear()


@pytest.fixture
def have(monkeypatch):
    """Which datasets this machine holds: all of them, until the test calls ``have(*names)``.

    Replaces ``data.locate`` without a data folder; a data folder is still searched for real
    (``views.datasets.check_folder`` accepts only what lies in it)."""
    from bn_core import data
    from bn_core.constants import DATASETS

    real, here = data.locate, set(DATASETS)

    def locate(dataset, data_dir=None):
        if data_dir is not None:
            return real(dataset, data_dir)
        if dataset not in DATASETS:
            raise data.DatasetError(f"unknown dataset {dataset!r}")
        return f"/data/{dataset}" if dataset in here else None

    def have(*names: str) -> None:
        here.clear()
        here.update(names)

    monkeypatch.setattr(data, "locate", locate)
    real_problem = data.search.header_problem  # the made-up /data/... folders are sound
    monkeypatch.setattr(
        data.search,
        "header_problem",
        lambda hit: None if str(hit).startswith("/data/") else real_problem(hit),
    )
    return have


# ----------------------------------------------------------------------------- the browser


@pytest.fixture()
def server(tmp_path):
    """(URL, run store) of ``streamlit run app.py`` over a fresh store that trains for real
    (its workers are killed at the end); a test file may define its own ``server``."""
    from bn_core.runs.store.run_store import RunStore
    from tests.browser import CHROMIUM, dashboard

    assert os.path.exists(CHROMIUM), "install Debian's chromium (scripts/test.sh does)"
    home = tmp_path / "bn_lab"
    env = {**os.environ, "BN_LAB_HOME": str(home), "BN_LAB_MAX_CONCURRENT": "1"}
    env.pop("BN_DATA_DIR", None)
    try:
        with dashboard(env, tmp_path / "streamlit.log") as url:
            yield url, RunStore(home)
    finally:
        for run in RunStore(home).list_runs():  # never leave a worker behind
            if run.pid and run.active:
                try:
                    os.kill(run.pid, 9)
                except ProcessLookupError:
                    pass


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright (tests/browser.py's path and flags)."""
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_FLAGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(request, browser):
    """A fresh browser context (a new Streamlit session); a screenshot of it is kept."""
    from tests.browser import ARTIFACTS, TIMEOUT

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    try:
        yield page
    finally:
        shot = f"{request.node.path.stem.removeprefix('test_')}-{request.node.name}.png"
        page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
        context.close()
