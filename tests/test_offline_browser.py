"""The dashboard in a real browser, without training: nothing it loads comes from another
host, and the Compare page's HTML report downloads on the first click.

Uses test_e2e_browser's ``server`` fixture (``streamlit run app.py`` on a free port with a
fresh run store, driven through Debian's Chromium; nothing is downloaded). The store is seeded
directly with finished runs (tests/helpers.py's ``seed_group``), so the pages that read them draw
charts and tables (Compare: its five charts and the report).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS
from tests.helpers import seed_group

# Every page of app.py's menu and its heading.
PAGES = [
    ("/", "Train"),
    ("/runs", "Runs"),
    ("/cluster", "Cluster"),
    ("/compare", "Compare"),
    ("/network", "Inside the network"),
    ("/window", "Window size"),
    ("/sweep", "Sweep"),
    ("/about", "About BN Lab"),
]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
NOT_NETWORK = {"data", "blob", "about"}  # inline content: no request leaves the page


def _leaves_the_machine(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme not in NOT_NETWORK and parts.hostname not in LOOPBACK


def _open(page: Page, url: str, heading: str) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible(timeout=60_000)


def test_no_request_leaves_the_machine(server):
    url, store = server
    seed_group(store, seeds=(0,))
    seen: list[str] = []
    icons = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        context.on("request", lambda request: seen.append(request.url))
        page = context.new_page()
        page.on("websocket", lambda socket: seen.append(socket.url))
        try:
            for path, heading in PAGES:
                _open(page, url + path, heading)
                page.wait_for_timeout(1500)  # late requests: favicon, fonts, chart code
                icons[path] = page.evaluate("document.querySelector('link[rel*=icon]').href")
        finally:
            browser.close()
    assert any(urlsplit(u).path == "/_stcore/stream" for u in seen), seen  # it was recorded
    assert [u for u in seen if _leaves_the_machine(u)] == []
    # The favicon is app.py's own file, inline (its ":material/science:" came from gstatic).
    assert {path: icon[:26] for path, icon in icons.items()} == {
        path: "data:image/svg+xml;base64," for path, _ in PAGES
    }


@pytest.fixture()
def compare_page(server):
    """A browser tab on Compare showing two finished runs, lenet and lenet_fc_bn2."""
    url, store = server
    seed_group(store, seeds=(0,))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
        try:
            _open(page, url + "/compare", "Compare")
            expect(page.locator("[data-testid='stTable']")).to_be_visible(timeout=60_000)
            yield page
        finally:
            page.screenshot(path=str(ARTIFACTS / "compare-report.png"), full_page=True)
            browser.close()


def _download_report(page: Page, tmp_path) -> str:
    """Click "Report (HTML)" once; the downloaded file's text."""
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Report (HTML)").click(timeout=60_000)
    assert download.value.suggested_filename == "bn-lab-report.html"
    path = tmp_path / "report.html"
    download.value.save_as(path)
    return path.read_text()


def _assert_is_the_report(text: str) -> None:
    assert text.lstrip().lower().startswith("<!doctype html>")
    assert "<title>BN Lab comparison</title>" in text
    assert "lenet_fc_bn2" in text and text.rstrip().endswith("</html>")


def test_the_report_downloads_on_the_first_click(compare_page, tmp_path):
    _assert_is_the_report(_download_report(compare_page, tmp_path))
    expect(compare_page.get_by_test_id("stDownloadButtonError")).to_have_count(0)


def test_the_report_downloads_right_after_two_quick_changes(compare_page, tmp_path):
    # The second change cuts the first one's rerun short; the click lands while the page
    # reruns, on the button drawn before. A button with data=callable failed here: the cut
    # rerun had made the server forget the callable ("Deferred file ... not found").
    button = compare_page.get_by_role("button", name="Report (HTML)")
    expect(button).to_be_visible(timeout=60_000)  # drawn last, after the charts
    seeds = compare_page.locator(".st-key-compare-seeds input")
    seeds.check(force=True)
    compare_page.wait_for_timeout(500)
    seeds.uncheck(force=True)
    compare_page.wait_for_timeout(200)
    _assert_is_the_report(_download_report(compare_page, tmp_path))
