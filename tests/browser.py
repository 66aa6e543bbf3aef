"""The dashboard in Debian's Chromium, for the browser tests and for bench/: where the browser
is, the flags it runs with, and ``dashboard()``, which serves ``streamlit run app.py`` on a free
loopback port for as long as a test or a benchmark needs it.

Chromium comes from Debian (``apt-get install chromium``; scripts/test.sh does it) and is
driven through Playwright with ``executable_path=CHROMIUM``: nothing is downloaded. The flags
keep it from reaching anything but the dashboard (no QUIC, sync, component updates or
background networking).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

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
