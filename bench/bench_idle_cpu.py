"""How much CPU does an idle dashboard take, with and without Streamlit's file watcher?

    .venv/bin/python bench/bench_idle_cpu.py [--windows 5] [--seconds 10] [--settle 20]

For each configuration, starts ``streamlit run app.py`` on a free loopback port with an empty
run store (a temporary BN_LAB_HOME), opens one Chromium tab on it (Debian's /usr/bin/chromium
through Playwright; nothing is downloaded), waits until the Train page is drawn and then
``--settle`` seconds more, and measures the server's CPU time (its child processes included;
nothing trains) over ``--windows`` windows of ``--seconds`` each, with the tab open.

- before: the file watcher on, as Streamlit's defaults had it here
  (``--server.fileWatcherType auto --server.runOnSave true``);
- after: .streamlit/config.toml as shipped (``fileWatcherType = "none"``, no rerun on save).

Reported: % of one core per window (CPU seconds / wall seconds), their median and range.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: tests/
from tests.browser import CHROMIUM, CHROMIUM_FLAGS, free_port, wait_healthy  # noqa: E402

CONFIGS = {
    "before (file watcher on, rerun on save)": [
        "--server.fileWatcherType",
        "auto",
        "--server.runOnSave",
        "true",
    ],
    "after (.streamlit/config.toml)": [],
}


def cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU time of ``proc`` and of its live descendants."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measure(extra: list[str], browser, windows: int, seconds: float, settle: float):
    """(% of one core over each window, how long the page took to draw) for a server started
    with ``extra`` flags."""
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "BN_LAB_HOME": home}
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
            + ["--server.address", "127.0.0.1", *extra],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, proc, Path(os.devnull))
            page = browser.new_page()
            started = time.perf_counter()
            page.goto(url + "/")
            try:
                expect(page.get_by_role("heading", name="Train", exact=True)).to_be_visible(
                    timeout=300_000
                )
                drawn = f"page drawn in {time.perf_counter() - started:.0f} s"
            except AssertionError:  # a server too busy to draw is measured all the same
                drawn = "page not drawn in 300 s"
            time.sleep(settle)
            server = psutil.Process(proc.pid)
            shares = []
            for _ in range(windows):
                cpu0, t0 = cpu_seconds(server), time.perf_counter()
                time.sleep(seconds)
                cpu1, t1 = cpu_seconds(server), time.perf_counter()
                shares.append(100 * (cpu1 - cpu0) / (t1 - t0))
            page.close()
            return shares, drawn
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--windows", type=int, default=5, help="windows per configuration")
    parser.add_argument("--seconds", type=float, default=10, help="length of one window")
    parser.add_argument("--settle", type=float, default=20, help="wait after the page is drawn")
    args = parser.parse_args()
    results = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            for name, extra in CONFIGS.items():
                results[name] = measure(extra, browser, args.windows, args.seconds, args.settle)
        finally:
            browser.close()
    print(
        f"{os.cpu_count()} cores, load average at the end {os.getloadavg()[0]:.1f}; "
        f"{args.windows} windows of {args.seconds:g} s per configuration, one tab open\n"
    )
    print("| configuration | server CPU, % of one core: median (min–max) | windows | first paint |")
    print("|---|---:|---|---|")
    for name, (shares, drawn) in results.items():
        each = ", ".join(f"{s:.1f}" for s in shares)
        print(
            f"| {name} | {statistics.median(shares):.1f} "
            f"({min(shares):.1f}–{max(shares):.1f}) | {each} | {drawn} |"
        )


if __name__ == "__main__":
    main()
