"""The Train form in a real browser, on a machine without MNIST and without internet.

One ``streamlit run app.py`` for the module, started with HOME and KERAS_HOME in a temporary
folder (no Keras cache), BN_DATA_DIR on a folder holding only a Fashion-MNIST-shaped npz and
BN_DATA_MIRROR on a closed local port (a download fails at once). Each test opens a fresh
browser session through Debian's Chromium (Playwright, nothing downloaded) and checks the run
store: nothing may be queued. Nothing trains here. Screenshots go to ``artifacts/train-form/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from bn_core.runs.store.run_store import RunStore
from tests.browser import CHROMIUM, CHROMIUM_FLAGS, dashboard, settle
from tests.helpers import write_npz

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts" / "train-form"
TIMEOUT = 30_000  # ms for each action and expectation: the machine may be busy
expect.set_options(timeout=TIMEOUT)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, RunStore, Path]]:
    """(URL, run store, a folder holding an MNIST-shaped mnist.npz) of a fresh dashboard."""
    assert os.path.exists(CHROMIUM), "install Debian's chromium (scripts/test.sh does)"
    tmp = tmp_path_factory.mktemp("train-form")
    fashion = write_npz(tmp / "data").rename(tmp / "data" / "fashion_mnist.npz")
    mnist_folder = write_npz(tmp / "mnist-here").parent
    home = tmp / "bn_lab"
    env = {
        **os.environ,
        "HOME": str(tmp / "home"),
        "KERAS_HOME": str(tmp / "keras"),
        "BN_DATA_DIR": str(fashion.parent),
        "BN_DATA_MIRROR": "http://127.0.0.1:9/",
        "BN_LAB_HOME": str(home),
        "BN_LAB_MAX_CONCURRENT": "1",
    }
    with dashboard(env, tmp / "streamlit.log") as url:
        yield url, RunStore(home), mnist_folder


@pytest.fixture
def page(request, server) -> Iterator[Page]:
    """A fresh browser session on the Train page; a screenshot of it is kept at the end."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.set_default_timeout(TIMEOUT)
        try:
            page.goto(server[0] + "/")
            heading = page.get_by_role("heading", name="Train", exact=True)
            expect(heading).to_be_visible(timeout=60_000)
            yield page
        finally:
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
            browser.close()


def start_button(page: Page):
    return page.locator(".st-key-train-start button")


def type_number(page: Page, key: str, value: int) -> None:
    field = page.locator(f".st-key-{key} input")
    field.fill(str(value))
    field.press("Enter")
    settle(page)


def go_to(page: Page, title: str) -> None:
    """Switch page through the app's menu (the same browser session, no reload)."""
    page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()


def test_the_form_survives_a_visit_to_another_page(page, server):
    type_number(page, "train-seed", 7)
    expect(page.get_by_text("1 seed(s) (7)")).to_be_visible()
    epochs = page.locator(".st-key-train-epochs input[type='range']")
    epochs.focus()
    epochs.press("Home")  # the first step: 1 epoch
    expect(epochs).to_have_attribute("aria-valuetext", "1")
    epochs.press("ArrowRight")  # one step up: 2 epochs, not 1 + 1/200th of the range
    expect(epochs).to_have_attribute("aria-valuetext", "2")
    page.locator(".st-key-train-quick input[type='checkbox']").check(force=True)
    expect(page.locator(".st-key-train-train-limit input")).to_be_enabled()
    type_number(page, "train-train-limit", 2000)
    expect(page.locator(".st-key-train-train-limit input")).to_have_value("2000")
    settle(page)  # every choice above has reached the session before the page changes

    go_to(page, "Runs")
    go_to(page, "Train")
    expect(page.locator(".st-key-train-seed input")).to_have_value("7")
    expect(page.locator(".st-key-train-epochs input[type='range']")).to_have_attribute(
        "aria-valuetext", "2"
    )
    expect(page.locator(".st-key-train-quick input[type='checkbox']")).to_be_checked()
    expect(page.locator(".st-key-train-train-limit input")).to_have_value("2000")

    go_to(page, "Sweep")  # the last choices are the Sweep's defaults
    expect(page.locator(".st-key-sweep-epochs input[type='range']")).to_have_attribute(
        "aria-valuetext", "2"
    )
    expect(page.locator(".st-key-sweep-quick input[type='checkbox']")).to_be_checked()
    assert server[1].list_runs() == []


def test_an_invalid_seed_is_refused_and_nothing_is_queued(page, server):
    type_number(page, "train-seed", -5)
    message = "seed must be between 0 and 2147483647. Received: -5"
    under_field = page.locator("[data-testid='stAlertContentError']", has_text=message)
    expect(under_field).to_have_count(2)  # under the field and beside Start
    expect(page.locator(".st-key-train-seed input")).to_have_value("-5")  # not clamped
    expect(page.locator(".st-key-train-seed")).to_contain_text("0–2,147,483,647")
    expect(start_button(page)).to_be_disabled()
    page.screenshot(path=str(ARTIFACTS / "invalid-seed.png"), full_page=True)
    assert server[1].list_runs() == []


def test_a_dataset_that_is_not_here_is_refused_before_start(page, server):
    url, store, mnist_folder = server
    dataset = page.locator(".st-key-train-dataset")
    combobox = dataset.locator("[role='combobox']")
    expect(combobox).to_have_value("fashion_mnist")  # the default: one that is here
    expect(start_button(page)).to_be_enabled()
    combobox.click()
    page.get_by_role("option", name="mnist", exact=True).click()
    expect(page.get_by_text("not on this machine yet")).to_be_visible()
    expect(start_button(page)).to_be_disabled()
    expect(page.get_by_text("mnist is not on this machine: download it")).to_be_visible()

    page.locator(".st-key-train-download button").click()
    expect(
        page.get_by_text("The download of mnist from http://127.0.0.1:9/ failed")
    ).to_be_visible()
    expect(start_button(page)).to_be_disabled()
    page.screenshot(path=str(ARTIFACTS / "download-failed.png"), full_page=True)

    folder = page.locator(".st-key-train-data-dir input")
    folder.fill("/etc")
    folder.press("Enter")
    expect(page.get_by_text("the data folder holds no mnist").first).to_be_visible()
    expect(start_button(page)).to_be_disabled()
    folder.fill(str(mnist_folder))
    folder.press("Enter")
    expect(page.get_by_text(f"available locally at {mnist_folder / 'mnist.npz'}")).to_be_visible()
    expect(start_button(page)).to_be_enabled()  # a checked folder makes the runs possible
    assert store.list_runs() == []
