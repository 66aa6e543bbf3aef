"""The dashboard in Debian's Chromium, for the browser tests and for bench/: where the browser
is, the flags it runs with, and ``dashboard()``, which serves ``streamlit run app.py`` on a free
loopback port for as long as a test or a benchmark needs it.

Chromium comes from Debian (``apt-get install chromium``; scripts/test.sh does it) and is
driven through Playwright with ``executable_path=CHROMIUM``: nothing is downloaded. The flags
keep it from reaching anything but the dashboard (no QUIC, sync, component updates or
background networking).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, expect

from bn_core.runs.store.run_store import RunRecord, RunStore
from bn_core.views import overlay as ov
from bn_core.views.runs import rows_by_run, run_label

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "artifacts" / "e2e"  # screenshots of the browser tests
# app.py's menu: (icon, title, URL path) per page, in order; the default page's URL is "/".
APP_MENU = [
    ["play_circle", "Train", "/"],
    ["monitoring", "Runs", "/runs"],
    ["lan", "Cluster", "/cluster"],
    ["compare_arrows", "Compare", "/compare"],
    ["hub", "Inside the network", "/network"],
    ["tune", "Window size", "/window"],
    ["grid_on", "Sweep", "/sweep"],
    ["info", "About", "/about"],
]
TIMEOUT = 30_000  # ms for each action and expectation: the machine may be busy
# plotly's own view of the chart under ``.st-key-KEY``: null until it is drawn.
READ_PLOT = """(key) => {
  const plot = document.querySelector(`.st-key-${key} .js-plotly-plot`);
  if (!plot || !plot._fullData || !plot._fullLayout) return null;
  return {
    hovermode: plot._fullLayout.hovermode,
    ytype: plot._fullLayout.yaxis.type,
    xtitle: plot._fullLayout.xaxis.title.text,
    traces: plot._fullData.map((t) => ({
      name: t.name,
      legend: t.showlegend !== false,
      opacity: t.opacity,
      y: Array.from(t.y || [], Number),
    })),
  };
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Wait until the server at ``url`` answers its health check; its output is in ``log``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}; its output: {log}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not become healthy in {timeout:.0f} s; its output: {log}")


@contextmanager
def dashboard(
    env: Mapping[str, str],
    log_path: Path,
    *,
    app_root: Path = ROOT,
    flags: Sequence[str] = (),
) -> Iterator[str]:
    """``streamlit run app.py`` of ``app_root`` on a free loopback port with ``env`` (and
    extra server ``flags``), its output in ``log_path``; yields its URL once healthy, and
    stops it afterwards."""
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
            + ["--server.address", "127.0.0.1", "--server.headless", "true"]
            + ["--browser.gatherUsageStats", "false", *flags],
            cwd=app_root,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, proc, log_path)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def synthetic_dashboard(tmp: Path, n_runs: int, epochs: int) -> Iterator[tuple[str, RunStore]]:
    """(URL, run store) of a dashboard over ``n_runs`` finished runs in groups of 15, written
    by ``bench/synthetic_store.py`` (bench/ is not a package: loaded from its path)."""
    assert os.path.exists(CHROMIUM), "install Debian's chromium (scripts/test.sh does)"
    path = ROOT / "bench" / "synthetic_store.py"
    spec = importlib.util.spec_from_file_location("synthetic_store", path)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    home = tmp / "bn_lab"
    generator.build(home, n_runs, epochs=epochs)
    # No standby worker (it would import TensorFlow for nothing), no login gate.
    env = {**os.environ, "BN_LAB_HOME": str(home), "BN_LAB_STANDBY": "0"}
    env.pop("BN_LAB_PASSWORD", None)
    with dashboard(env, tmp / "streamlit.log") as url:
        yield url, RunStore(home)


# ----------------------------------------------------------------------------- reading the page


def settle(page: Page) -> None:
    """Wait until the rerun that the last input asked for has finished on the server: a value
    typed into a field shows in the browser at once, but the session has it only once its
    rerun ran (a click on another page before then may cut that rerun short)."""
    page.wait_for_timeout(300)  # the rerun request leaves the browser
    app = page.locator("[data-testid='stApp']")
    expect(app).to_have_attribute("data-test-script-state", "notRunning", timeout=TIMEOUT)


def wait_until(page: Page, read: Callable, ok: Callable, what: str, show: Callable = repr):
    """``read()`` once ``ok`` holds for it (a rerun redraws the page a moment after a widget
    changes); fails with ``show`` of what was last read."""
    deadline = time.monotonic() + TIMEOUT / 1000
    while True:
        value = read()
        if value is not None and ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never {what}; last seen: {show(value)}")
        page.wait_for_timeout(200)


def wait_plot(page: Page, key: str, ok: Callable[[dict], bool], what: str) -> dict:
    """The chart under ``.st-key-KEY`` (plotly's state) once ``ok`` holds for it."""

    def show(plot: dict | None) -> str:
        names = plot and [t["name"] for t in lines(plot)]
        return repr(plot and {**plot, "traces": names, "url": page.url})

    return wait_until(page, lambda: page.evaluate(READ_PLOT, key), ok, f"{key} {what}", show)


def lines(plot: dict) -> list[dict]:
    """One trace per run: the (smoothed) line in the legend; the faint raw ones are not."""
    return [t for t in plot["traces"] if t["legend"]]


def choose(page: Page, key: str, option: str, typed: str | None = None) -> None:
    """Pick ``option`` in the selectbox keyed ``key``, typing ``typed`` into it first."""
    box = page.locator(f".st-key-{key} [role='combobox']")
    box.click()
    if typed is not None:
        box.fill(typed)
    page.get_by_role("option", name=option, exact=True).click()
    expect(box).to_have_value(option)


def candidates(store: RunStore, group_id: str) -> list[RunRecord]:
    """The runs Compare offers for a group: all that have started."""
    return [r for r in store.list_runs(group_id=group_id) if r.status not in ("queued", "starting")]


def legend_names(store: RunStore, runs: list[RunRecord], metric: str) -> list[str]:
    """The legend names of the runs that have points of ``metric`` (a failed run has none)."""
    ids = [r.id for r in runs]
    training = metric in ov.TRAINING_METRICS
    rows = rows_by_run(store.batch_metrics(ids) if training else store.epoch_metrics(ids))
    return sorted(run_label(r, status=False) for r in runs if rows.get(r.id))
