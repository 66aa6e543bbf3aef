"""How long does each dashboard page take to settle with 100, 1,000 or 5,000 finished runs?

    .venv/bin/python bench/bench_pages.py [--sizes 100,1000,5000] [--loads 3] [--json PATH]
                                          [--app-root PATH] [--pages /,/runs,...] [--warm]

For each store size: a synthetic store (``bench/synthetic_store.py``: the quick Original study
in groups of 15, 10 epochs per run), built once per size and schema version and cached under
``/tmp/bn-lab-bench-stores/``, is copied into a fresh ``BN_LAB_HOME``; ``streamlit run app.py``
of ``--app-root`` (default: this checkout; another checkout gives "before" numbers) serves it on
a free loopback port (no standby worker: nothing trains); then every page is loaded
``--loads`` times in Debian's /usr/bin/chromium through Playwright (nothing is downloaded):
by default each time in a fresh browser context, a first visit (after one uncounted load of the
first page); with ``--warm`` in new tabs of one context that has loaded every page once, so its
HTTP and code caches hold the app's scripts, as for a returning visitor.

Settle time of one load: from navigation start to the last DOM mutation before the app is
idle, i.e. before a quiet period of 1.5 s during which the page's title is drawn, Streamlit's
status widget shows no running script (nor a connection in progress), no element is stale
(``data-stale="true"``) and nothing in the DOM changes. A MutationObserver injected before the
page's own scripts records the time (``performance.now()``) of every mutation. A load that is
not idle within ``--cap`` seconds is reported as ">cap". Also recorded: the peak JS heap
(``performance.memory.usedJSHeapSize``, sampled every 250 ms; Chromium runs with
``--enable-precise-memory-info`` so the value is not bucketed).

Prints, per page and size, the median settle time and the median peak heap as markdown
tables; ``--json`` also writes every load. The server's output goes to
``--log-dir``/streamlit-SIZE.log.

One file over 300 lines on purpose: a benchmark is run and read whole, from its cached stores
to its tables, and shares nothing with the app's code.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: tests/
from tests.browser import CHROMIUM  # noqa: E402 - after the path it needs
from tests.browser import CHROMIUM_FLAGS as BASE_FLAGS  # noqa: E402
from tests.browser import dashboard as serve  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GENERATOR = HERE / "synthetic_store.py"
STORE_CACHE = Path(tempfile.gettempdir()) / "bn-lab-bench-stores"
CHROMIUM_FLAGS = [
    *BASE_FLAGS,
    "--enable-precise-memory-info",  # usedJSHeapSize exact, not bucketed and cached
]
PAGES = ("/", "/runs", "/compare", "/network", "/window", "/sweep", "/about")
SIZES = (100, 1000, 5000)
QUIET_S = 1.5  # no DOM change for this long (with the app idle) = settled
POLL_S = 0.1
# Runs before the page's own scripts: the time of the last DOM mutation and the peak heap.
RECORDER = """
(() => {
  const bench = (window.__bench = { last: performance.now(), heap: 0 });
  const sample = () => {
    if (performance.memory) bench.heap = Math.max(bench.heap, performance.memory.usedJSHeapSize);
  };
  new MutationObserver(() => { bench.last = performance.now(); }).observe(document, {
    subtree: true, childList: true, attributes: true, characterData: true });
  setInterval(sample, 250);
  sample();
})();
"""
# The page's state as the poll sees it: idle means drawn, nothing running, nothing stale.
STATE = """
() => {
  const bench = window.__bench || { last: performance.now(), heap: 0 };
  if (performance.memory) bench.heap = Math.max(bench.heap, performance.memory.usedJSHeapSize);
  const busy = document.querySelector(
    "[data-testid='stStatusWidgetRunningIcon'], [data-testid='stConnectionStatus']");
  const idle = !!document.querySelector("[data-testid='stMain'] h1") && !busy
    && !document.querySelector("[data-stale='true']");
  return { now: performance.now(), last: bench.last, idle, heap: bench.heap };
}
"""


def main() -> None:
    args = _parse_args()
    if not os.path.exists(CHROMIUM):
        sys.exit(
            f"bench_pages: no browser at {CHROMIUM}: install Debian's chromium "
            "(apt-get install chromium; scripts/test.sh does). Nothing is downloaded here."
        )
    from playwright.sync_api import sync_playwright  # after the check: its error is clearer

    args.log_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    results: dict[int, dict[str, dict]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            for size in args.sizes:
                store = cached_store(args.app_root, size)
                log = args.log_dir / f"streamlit-{size}.log"
                with fresh_home(store) as home, dashboard(args.app_root, home, log) as url:
                    warm = new_context(browser) if args.warm else None
                    for path in args.pages if args.warm else args.pages[:1]:  # uncounted
                        measure_load(browser, url + path, args.cap, warm)
                    results[size] = {}
                    for path in args.pages:
                        loads = [
                            measure_load(browser, url + path, args.cap, warm)
                            for _ in range(args.loads)
                        ]
                        results[size][path] = {"loads": loads, **_medians(loads)}
                        _progress(size, path, loads, args.cap)
        finally:
            browser.close()
    report = {
        "app_root": str(args.app_root),
        "revision": _revision(args.app_root),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "loads_per_page": args.loads,
        "browser": "warm (one context, each page loaded once before)" if args.warm else "cold",
        "cap_s": args.cap,
        "quiet_s": QUIET_S,
        "results": {str(size): pages for size, pages in results.items()},
    }
    print(markdown(report, args.sizes, args.pages))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--sizes", type=_int_list, default=SIZES, help="store sizes (runs), comma-separated"
    )
    parser.add_argument(
        "--pages", type=_page_list, default=PAGES, help="page paths, comma-separated"
    )
    parser.add_argument("--loads", type=_positive_int, default=3, help="loads per page and size")
    parser.add_argument("--cap", type=float, default=60.0, help="seconds before a load gives up")
    parser.add_argument("--json", type=Path, help="also write every load here")
    parser.add_argument(
        "--warm",
        action="store_true",
        help="a returning visitor: every load in one browser context whose caches hold the "
        "app's scripts (each page loaded once, uncounted, first); default: a fresh context "
        "per load, a first visit",
    )
    parser.add_argument(
        "--app-root", type=Path, default=ROOT, help="the checkout whose app.py is served"
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bn-lab-bench-logs",
        help="where the servers' output goes",
    )
    args = parser.parse_args()
    args.app_root = args.app_root.resolve()
    if not (args.app_root / "app.py").is_file():
        parser.error(
            f"--app-root must be a BN Lab checkout (with app.py). Received: {args.app_root}"
        )
    if args.cap <= QUIET_S:
        parser.error(f"--cap must be more than {QUIET_S} seconds. Received: {args.cap}")
    return args


def _int_list(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive whole numbers. Received: {text}")
    return sizes


def _page_list(text: str) -> tuple[str, ...]:
    pages = tuple(part.strip() for part in text.split(","))
    unknown = [page for page in pages if page not in PAGES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"pages must be among {', '.join(PAGES)}. Received: {', '.join(unknown)}"
        )
    return pages


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1. Received: {text}")
    return int(text)


def _app_env(app_root: Path) -> dict[str, str]:
    """The environment for the app's own code: its checkout first on the path."""
    path = os.pathsep.join(filter(None, [str(app_root), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("BN_LAB_PASSWORD", None)  # no login form in front of the pages
    return env


def cached_store(app_root: Path, size: int) -> Path:
    """A synthetic store of ``size`` runs at the app's schema version, built by the app's own
    code (so a "before" checkout never sees a newer store, nor migrates one while timed),
    reused while the generator is unchanged."""
    env = _app_env(app_root)
    version = subprocess.run(
        [sys.executable, "-c", "from bn_core.runs.store.migrations import LATEST; print(LATEST)"],
        cwd=app_root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    generator = hashlib.sha256(GENERATOR.read_bytes()).hexdigest()[:8]
    folder = STORE_CACHE / f"{size}-runs-schema{version}-{generator}"
    if (folder / "runs.sqlite").is_file():
        return folder / "runs.sqlite"
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    print(f"building a store of {size:,} runs in {folder}", file=sys.stderr)
    subprocess.run(
        [sys.executable, str(GENERATOR), str(partial), "--runs", str(size)],
        cwd=app_root,
        env=env,
        check=True,
    )
    partial.rename(folder)
    return folder / "runs.sqlite"


@contextmanager
def fresh_home(store: Path) -> Iterator[Path]:
    """A temporary BN_LAB_HOME holding a copy of ``store`` (the server may write to it)."""
    with tempfile.TemporaryDirectory(prefix="bn-lab-bench-") as home:
        shutil.copyfile(store, Path(home) / "runs.sqlite")
        yield Path(home)


@contextmanager
def dashboard(app_root: Path, home: Path, log_path: Path) -> Iterator[str]:
    """The dashboard of ``app_root`` over the store in ``home`` (no standby worker: nothing
    trains), its output in ``log_path``; yields its URL once healthy, stops it afterwards."""
    env = {**_app_env(app_root), "BN_LAB_HOME": str(home), "BN_LAB_STANDBY": "0"}
    with serve(env, log_path, app_root=app_root) as url:
        yield url


def new_context(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(RECORDER)
    return context


def measure_load(browser, url: str, cap: float, warm=None) -> dict:
    """One load of ``url`` in a fresh browser context (a first visit: nothing cached), or
    in a new tab of the context ``warm`` (a returning visitor: the browser's HTTP and code
    caches hold the app's scripts): ``settle_s`` (None when not idle within ``cap`` seconds)
    and ``heap_mb``, the peak JS heap. Either way a new Streamlit session."""
    context = warm or new_context(browser)
    page = context.new_page()
    started = time.perf_counter()
    try:
        page.goto(url, wait_until="commit", timeout=cap * 1000)
        state = {"heap": 0}
        while time.perf_counter() - started < cap + QUIET_S:
            state = page.evaluate(STATE)
            if state["now"] > cap * 1000:
                break
            if state["idle"] and state["now"] - state["last"] >= QUIET_S * 1000:
                settle = state["last"] / 1000
                return {"settle_s": round(settle, 3), "heap_mb": _mb(state["heap"])}
            time.sleep(POLL_S)
        return {"settle_s": None, "heap_mb": _mb(state["heap"])}
    finally:
        page.close()
        if warm is None:
            context.close()


def _mb(heap: float) -> float | None:
    return round(heap / 2**20, 1) if heap else None


def _medians(loads: list[dict]) -> dict:
    """Median settle time (None when most loads timed out) and median peak heap."""
    settles = [math.inf if x["settle_s"] is None else x["settle_s"] for x in loads]
    median = statistics.median(settles)
    heaps = [x["heap_mb"] for x in loads if x["heap_mb"] is not None]
    return {
        "median_s": None if math.isinf(median) else round(median, 3),
        "median_heap_mb": round(statistics.median(heaps), 1) if heaps else None,
    }


def _progress(size: int, path: str, loads: list[dict], cap: float) -> None:
    each = ", ".join(_seconds(x["settle_s"], cap) for x in loads)
    print(f"{size:>6,} runs  {path:<9} {each}", file=sys.stderr, flush=True)


def _seconds(value: float | None, cap: float) -> str:
    return f">{cap:g}" if value is None else f"{value:.2f}"


def _revision(app_root: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(app_root), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() if done.returncode == 0 else "not a git checkout"


def markdown(report: dict, sizes: tuple[int, ...], pages: tuple[str, ...]) -> str:
    """The report's medians as two markdown tables: settle time, then peak JS heap."""
    cap = report["cap_s"]
    head = "| page | " + " | ".join(f"{size:,} runs" for size in sizes) + " |"
    rule = "|---|" + "---:|" * len(sizes)
    settle, heap = [head, rule], [head, rule]
    for path in pages:
        cells = [report["results"][str(size)][path] for size in sizes]
        settle.append(
            f"| {path} | " + " | ".join(_seconds(c["median_s"], cap) for c in cells) + " |"
        )
        heap.append(
            f"| {path} | "
            + " | ".join(
                "–" if c["median_heap_mb"] is None else f"{c['median_heap_mb']:.0f}" for c in cells
            )
            + " |"
        )
    return (
        f"{report['date']}, app {report['app_root']} ({report['revision']}), "
        f"{report['cores']} cores, load average {report['load_average'][0]} at the start and "
        f"{report['load_average'][1]} at the end; median of {report['loads_per_page']} loads.\n\n"
        "Settle time, s (navigation start to the last DOM change before 1.5 s idle):\n\n"
        + "\n".join(settle)
        + "\n\nPeak JS heap, MB:\n\n"
        + "\n".join(heap)
    )


if __name__ == "__main__":
    main()
