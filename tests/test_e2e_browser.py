"""The dashboard in a real browser: queue two runs, watch the live chart grow, compare them.

Starts ``streamlit run app.py`` on a free port with a fresh run store, drives Debian's
Chromium through Playwright (``executable_path=/usr/bin/chromium``; nothing is downloaded)
and trains for real on Fashion-MNIST (installed by scripts/test.sh). Screenshots go to
``artifacts/e2e/``. The test fails if the live view stops updating: it must see the number
of plotted points of a running run grow at least twice without any page reload.

A page URL as a fresh server's first request is served by Streamlit's pages-directory mode
(pages/_ui.py's use_navigation hands it over to app.py): the browser records every menu it
ever draws, from the first paint on, and all of them must be the app's own.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from bn_core.runs.store.run_store import RunStore
from tests.browser import APP_MENU, ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS

TRAIN_LIMIT = 40000  # 625 steps per epoch: ~20 batch events while we watch, even when slow
# Runs before the page's own scripts: on every DOM change (and every 50 ms) it appends the
# page's state to window.navStates whenever the state differs from the last one recorded.
RECORD_NAV_STATES = """
(() => {
  window.navStates = [];
  const text = (el) => (el ? el.textContent.trim() : "");
  const snap = () => {
    const links = document.querySelectorAll("[data-testid='stSidebar'] a, header a");
    const menu = Array.from(links).map((a) => [
      text(a.querySelector("[data-testid='stIconMaterial']")),
      text(a.querySelector("[data-testid='stMarkdownContainer']")) || text(a),
      new URL(a.href, location.href).pathname,
    ]);
    const view = document.querySelector("[data-testid='stAppViewContainer']");
    const state = {
      menu,
      title: document.title,
      layout: view ? view.dataset.layout || "" : "",
      headings: Array.from(document.querySelectorAll("h1")).map(text),
      path: location.pathname,
    };
    const last = window.navStates[window.navStates.length - 1];
    if (!last || JSON.stringify(last) !== JSON.stringify(state)) window.navStates.push(state);
  };
  new MutationObserver(snap).observe(document, {subtree: true, childList: true,
                                                characterData: true, attributes: true});
  setInterval(snap, 50);
})();
"""

pytestmark = pytest.mark.integration


def _points(page: Page, run_id: int) -> int:
    """Number of plotted x values in run ``run_id``'s live loss chart (0 if not drawn yet)."""
    return page.evaluate(
        """(key) => {
            const plot = document.querySelector(`.st-key-${key} .js-plotly-plot`);
            if (!plot || !plot._fullData) return 0;  // plotly's own count of drawn points
            return plot._fullData.reduce((n, trace) => n + (trace._length || 0), 0);
        }""",
        f"loss-{run_id}",
    )


def test_train_watch_live_and_compare_in_a_browser(server):
    url, store = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        try:
            _run_scenario(page, url, store)
        finally:
            page.screenshot(path=str(ARTIFACTS / "last.png"), full_page=True)
            browser.close()


@pytest.mark.parametrize(("path", "heading"), [("/runs", "Runs"), ("/about", "About BN Lab")])
def test_a_page_as_first_request_only_ever_shows_the_app_menu(server, path, heading):
    url, _ = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.add_init_script(RECORD_NAV_STATES)
        try:
            page.goto(url + path)  # the server's very first request
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible(
                timeout=60_000
            )
            nav = page.locator("[data-testid='stSidebarNav']")
            expect(nav.get_by_role("link")).to_have_count(len(APP_MENU))
            page.wait_for_timeout(1000)  # anything drawn after the page settles is seen too
            states = page.evaluate("window.navStates")
        finally:
            page.screenshot(path=str(ARTIFACTS / f"first-request{path.replace('/', '-')}.png"))
            browser.close()
    menus = [s["menu"] for s in states if s["menu"]]
    assert menus and all(menu == APP_MENU for menu in menus), menus
    shown = [s for s in states if s["menu"] or s["headings"]]
    assert {(s["title"], s["layout"]) for s in shown} == {("BN Lab", "wide")}, shown
    assert {s["path"] for s in states} == {path}, states
    assert states[-1]["headings"] == [heading], states[-1]


def _run_scenario(page: Page, url: str, store: RunStore) -> None:
    # --- Train: Fashion-MNIST, two variants, 1 epoch via the slider, quick mode --------------
    page.goto(url + "/")
    expect(page.get_by_role("heading", name="Train", exact=True)).to_be_visible(timeout=60_000)
    page.locator(".st-key-train-dataset [role='combobox']").click()
    page.get_by_role("option", name="fashion_mnist").click()
    expect(page.get_by_text("available locally")).to_be_visible(timeout=30_000)
    variants = page.locator(".st-key-train-variants")
    for name in ("lenet", "lenet_fc_bn2"):  # the page's defaults, checked rather than assumed
        expect(variants.get_by_text(name, exact=True)).to_be_visible()
    slider = page.locator(".st-key-train-epochs input[type='range']")
    slider.focus()
    slider.press("Home")  # the slider's minimum: 1 epoch
    expect(slider).to_have_attribute("aria-valuetext", "1", timeout=30_000)
    page.locator(".st-key-train-quick input[type='checkbox']").check(force=True)
    limit = page.locator(".st-key-train-train-limit input")
    expect(limit).to_be_enabled(timeout=30_000)
    limit.fill(str(TRAIN_LIMIT))
    limit.press("Enter")
    expect(page.get_by_text("2 runs", exact=True)).to_be_visible(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "1-train.png"), full_page=True)
    page.locator(".st-key-train-start button").click()
    expect(page.get_by_text("Queued 2 run")).to_be_visible(timeout=30_000)

    runs = store.list_runs()
    assert [(r.variant, r.config.epochs, r.config.train_limit, r.config.dataset) for r in runs] == [
        ("lenet", 1, TRAIN_LIMIT, "fashion_mnist"),
        ("lenet_fc_bn2", 1, TRAIN_LIMIT, "fashion_mnist"),
    ]

    # --- Runs: the first run's chart must grow while it trains, without a reload ------------
    page.goto(url + "/runs")
    first = runs[0].id
    seen, deadline = [], time.time() + 240
    while time.time() < deadline:
        count = _points(page, first)
        if count and (not seen or count > seen[-1]):
            seen.append(count)
            if len(seen) == 2:
                page.screenshot(path=str(ARTIFACTS / "2-live.png"), full_page=True)
        if store.get(first).status not in ("queued", "starting", "running"):
            break
        time.sleep(0.25)
    assert len(seen) >= 3, f"live chart did not keep growing: point counts seen {seen}"

    # --- wait for both runs, then Compare -------------------------------------------------
    deadline = time.time() + 300
    while time.time() < deadline and any(r.active for r in store.list_runs()):
        time.sleep(1)
    statuses = [(r.variant, r.status, r.error) for r in store.list_runs()]
    assert [s[1] for s in statuses] == ["completed", "completed"], statuses
    # Both ended: the live part is gone and the table (canvas cells) lists the two runs.
    expect(page.get_by_text("Runs 1–2 of 2", exact=False)).to_be_visible(timeout=30_000)
    expect(page.get_by_role("heading", name="Training now")).to_have_count(0, timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "3-runs-done.png"), full_page=True)

    page.goto(url + "/compare")
    table = page.locator("[data-testid='stTable']")
    expect(table).to_be_visible(timeout=60_000)
    for name in ("lenet", "lenet_fc_bn2"):
        expect(table.get_by_role("rowheader", name=name, exact=True)).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "4-compare.png"), full_page=True)


def _site_points(page: Page, site: str) -> int:
    """Points drawn in the percentile charts of ``site`` (widget keys network-SITE-...)."""
    return page.evaluate(
        """(site) => Array.from(
                document.querySelectorAll(`[class*='st-key-network-${site}-'] .js-plotly-plot`))
            .filter(p => p._fullData)
            .reduce((n, p) => n + p._fullData.reduce((m, t) => m + (t._length || 0), 0), 0)""",
        site,
    )


def test_quick_figure1_preset_streams_the_percentile_charts(server):
    url, store = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        try:
            page.goto(url + "/")
            expect(page.get_by_role("heading", name="Train", exact=True)).to_be_visible(
                timeout=60_000
            )
            page.locator(".st-key-train-preset [role='combobox']").click()
            page.get_by_role("option", name="Paper Figure 1 (figure1)").click()
            # Each change reruns the page: wait for its effect before the next one.
            probe_every = page.locator(".st-key-train-probe-every input")
            expect(probe_every).not_to_have_value("0", timeout=30_000)
            page.locator(".st-key-train-preset-quick input[type='checkbox']").check(force=True)
            expect(page.locator(".st-key-train-train-limit input")).to_be_enabled(timeout=30_000)
            page.locator(".st-key-train-dataset [role='combobox']").click()
            page.get_by_role("option", name="fashion_mnist").click()
            expect(page.get_by_text("available locally")).to_be_visible(timeout=30_000)
            expect(probe_every).not_to_have_value("0")
            expect(page.locator(".st-key-train-train-limit input")).to_be_enabled()
            page.locator(".st-key-train-start button").click()
            # (not "queued" alone: the cap line under Start says "... runs are queued now")
            expect(page.get_by_text(re.compile(r"^Queued \d+ run"))).to_be_visible(timeout=30_000)
            runs = store.list_runs()
            assert {r.variant for r in runs} == {"lenet", "lenet_fc_bn2"}
            settings = [(r.config.probe_every, r.config.train_limit) for r in runs]
            assert all(k > 0 and limit for k, limit in settings), settings

            page.goto(url + "/network")
            deadline, points = time.time() + 240, 0
            while time.time() < deadline and points == 0:
                points = _site_points(page, "C1")
                time.sleep(0.5)
            page.screenshot(path=str(ARTIFACTS / "5-network.png"), full_page=True)
            assert points > 0, "no C1 percentile chart with data appeared on Inside the network"
        finally:
            browser.close()
