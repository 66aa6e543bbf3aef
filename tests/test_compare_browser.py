"""Compare in a real browser, on a store of finished runs: the overlay chart with
smoothing and a log axis, renaming a group and finding it by name, and links that reopen the
same comparison.

One ``streamlit run app.py`` for the module, over a store that ``bench/synthetic_store.py``
writes in a fraction of a second (3 groups of 15 runs of the quick Original study, 3 epochs
each; one group holds a failed and a cancelled run): nothing trains. Each test opens a fresh
browser context (a new Streamlit session) through Debian's Chromium (Playwright, nothing
downloaded). Charts are read from plotly's own state (``_fullData``, ``_fullLayout``) and
checked against the store. Screenshots go to ``artifacts/e2e/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from bn_core.runs.store.catalog import GroupRecord
from bn_core.runs.store.run_store import RunRecord, RunStore
from bn_core.views import overlay as ov
from bn_core.views.runs import rows_by_run, run_label
from tests.browser import (
    ARTIFACTS,
    TIMEOUT,
    candidates,
    choose,
    legend_names,
    lines,
    synthetic_dashboard,
    wait_plot,
    wait_until,
)

expect.set_options(timeout=TIMEOUT)
EPOCHS = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, RunStore]]:
    """(URL, run store) of a dashboard over 45 finished runs in 3 groups."""
    with synthetic_dashboard(tmp_path_factory.mktemp("compare"), 45, EPOCHS) as served:
        yield served


# ----------------------------------------------------------------------------- helpers


def open_compare(page: Page, url: str, metric: str = "val_accuracy") -> dict:
    """Open ``url`` (a Compare link) and wait for its overlay chart of ``metric``."""
    page.goto(url)
    expect(page.get_by_role("heading", name="Compare", exact=True)).to_be_visible()
    return wait_plot(page, f"chart-overlay-{metric}", lambda plot: True, "drawn")


def wait_tags(page: Page, runs: list[RunRecord]) -> None:
    """Wait until the Runs multiselect shows exactly ``runs`` as chosen."""
    wanted = sorted(run_label(r) for r in runs)
    wait_until(page, lambda: sorted(shown_tags(page)), lambda tags: tags == wanted, "the runs")


def raw_traces(plot: dict) -> list[dict]:
    return [t for t in plot["traces"] if not t["legend"]]


def set_smoothing(page: Page, key: str) -> None:
    """The Smoothing slider to its minimum (``Home``: 0) or maximum (``End``: 0.99)."""
    slider = page.locator(".st-key-compare-smooth input[type='range']")
    slider.focus()
    slider.press(key)
    expect(slider).to_have_attribute("aria-valuetext", {"Home": "0.00", "End": "0.99"}[key])


def shown_tags(page: Page) -> list[str]:
    """The runs the Runs multiselect shows as chosen."""
    return page.locator(".st-key-compare-runs [data-tag]").evaluate_all(
        "tags => tags.map((t) => t.getAttribute('aria-label'))"
    )


def by_age(store: RunStore) -> list[GroupRecord]:
    """The groups, oldest first (the synthetic store numbers them #1, #2, #3 in that order)."""
    return sorted(store.list_groups(), key=lambda g: g.created_at)


# ----------------------------------------------------------------------------- tests


def test_overlay_draws_a_line_per_run_with_smoothing_and_a_log_axis(server, page):
    url, store = server
    group = by_age(store)[1]  # the group with a failed and a cancelled run
    runs = candidates(store, group.id)
    assert {r.status for r in runs} == {"completed", "failed", "cancelled"}  # the data's point

    plot = open_compare(page, f"{url}/compare?group={group.id}")
    expect(page.locator(".st-key-compare-group [role='combobox']")).to_have_value(group.label)
    assert sorted(t["name"] for t in lines(plot)) == legend_names(store, runs, "val_accuracy")
    assert len(raw_traces(plot)) == len(lines(plot))  # default smoothing 0.6: raw lines behind
    assert plot["hovermode"] == "x unified"

    choose(page, "compare-metric", ov.OVERLAY_METRICS["loss"])
    expected = legend_names(store, runs, "loss")
    plot = wait_plot(page, "chart-overlay-loss", lambda p: len(lines(p)) == len(expected), "loss")
    assert sorted(t["name"] for t in lines(plot)) == expected
    assert plot["ytype"] == "linear" and plot["hovermode"] == "x unified"
    # The per-variant panels (off by default) follow the metric: each seed's line is its
    # per-epoch training loss.
    page.locator(".st-key-compare-per-variant input[role='switch']").check(force=True)
    epochs = rows_by_run(store.epoch_metrics([r.id for r in runs]))
    per_epoch = {
        f"#{r.id} seed {r.seed}": [e["loss"] for e in epochs[r.id]]
        for r in runs
        if epochs.get(r.id)
    }
    multiples = wait_plot(page, "chart-loss_per_variant", lambda p: p["traces"], "drawn")
    seeds = {t["name"]: t["y"] for t in multiples["traces"] if t["name"] in per_epoch}
    assert seeds.keys() == per_epoch.keys()
    for name, ys in seeds.items():
        np.testing.assert_allclose(ys, per_epoch[name], rtol=1e-9)

    page.locator(".st-key-compare-log input[role='switch']").check(force=True)
    plot = wait_plot(page, "chart-overlay-loss", lambda p: p["ytype"] == "log", "log y")
    band = wait_plot(page, "chart-loss", lambda p: p["ytype"] == "log", "log y")  # beside it
    assert band["traces"] and plot["hovermode"] == "x unified"

    # Smoothing 0: each run's line is its raw points (the chunk means of its batch rows), and
    # the faint raw lines are gone.
    set_smoothing(page, "Home")
    plot = wait_plot(page, "chart-overlay-loss", lambda p: not raw_traces(p), "unsmoothed")
    batches = rows_by_run(store.batch_metrics([r.id for r in runs]))
    raw = {
        run_label(r, status=False): ov.chunk_means(batches[r.id], r.steps_per_epoch)["loss"]
        for r in runs
        if batches.get(r.id)
    }
    assert len(lines(plot)) == len(raw)
    for trace in lines(plot):
        np.testing.assert_allclose(trace["y"], raw[trace["name"]], rtol=1e-9)

    # Smoothing 0.99: the lines are the EMA of those points, far from them; raw lines are back.
    set_smoothing(page, "End")
    plot = wait_plot(page, "chart-overlay-loss", lambda p: raw_traces(p), "smoothed")
    assert plot["ytype"] == "log"
    for trace in lines(plot):
        np.testing.assert_allclose(trace["y"], ov.ema(raw[trace["name"]], 0.99), rtol=1e-9)
        assert np.max(np.abs(np.asarray(trace["y"]) - raw[trace["name"]])) > 0.1
    for trace in raw_traces(plot):
        assert trace["opacity"] == pytest.approx(ov.RAW_OPACITY)
    assert sorted(map(tuple, (t["y"] for t in raw_traces(plot)))) == sorted(
        map(tuple, (list(map(float, y)) for y in raw.values()))
    )


def test_a_renamed_group_is_found_by_its_name_in_the_picker(server, page):
    url, store = server
    oldest, newest = by_age(store)[0], by_age(store)[-1]
    open_compare(page, f"{url}/compare?group={oldest.id}")
    picker = page.locator(".st-key-compare-group [role='combobox']")
    expect(picker).to_have_value(oldest.label)

    page.get_by_role("button", name="Rename").click()
    name_box = page.locator(f".st-key-compare-rename-{oldest.id}-name input")
    name_box.fill("My BN study")
    name_box.press("Enter")  # the name reaches the server before Save asks for it
    page.locator(f".st-key-compare-rename-{oldest.id}-save button").click()
    expect(page.get_by_role("button", name="Rename")).to_be_visible()
    renamed = wait_until(  # the click's rerun writes it
        page, lambda: store.group(oldest.id), lambda g: g.name == "My BN study", "renamed"
    )
    expect(picker).to_have_value(renamed.label)  # the new name, without a reload
    page.keyboard.press("Escape")  # the popover, if it is still open
    # Another widget's rerun keeps the renamed group (the browser must not send a stale label).
    page.locator(".st-key-compare-log input[role='switch']").check(force=True)
    wait_plot(page, "chart-overlay-val_accuracy", lambda p: p["ytype"] == "log", "log y")
    expect(picker).to_have_value(renamed.label)
    assert parse_qs(urlsplit(page.url).query)["group"] == [oldest.id]

    choose(page, "compare-group", newest.label)  # elsewhere first: finding it must bring it back
    wait_plot(page, "chart-overlay-val_accuracy", lambda p: True, "drawn")
    picker.click()
    picker.fill("My BN")
    offered = page.get_by_role("option")
    expect(offered.first).to_have_text(renamed.label)
    assert offered.all_inner_texts() == [renamed.label]
    offered.first.click()
    expect(picker).to_have_value(renamed.label)
    wait_tags(page, candidates(store, oldest.id))
    assert parse_qs(urlsplit(page.url).query)["group"] == [oldest.id]


def test_a_shared_link_reopens_the_same_comparison(server, browser, page):
    url, store = server
    default = store.group(store.latest_finished_group())
    group = by_age(store)[1]
    assert group.id != default.id
    open_compare(page, f"{url}/compare")
    picker = page.locator(".st-key-compare-group [role='combobox']")
    expect(picker).to_have_value(default.label)

    choose(page, "compare-group", group.label)
    runs = candidates(store, group.id)
    wait_tags(page, runs)
    dropped = next(r for r in runs if r.status == "completed")
    remove = f".st-key-compare-runs [data-tag] button[aria-label='Remove {run_label(dropped)}']"
    page.locator(remove).click()
    kept = [r for r in runs if r.id != dropped.id]
    wait_tags(page, kept)
    choose(page, "compare-metric", ov.OVERLAY_METRICS["val_loss"])
    set_smoothing(page, "End")
    # Two clicks in quick succession, as people click: neither may be lost.
    page.locator(".st-key-compare-x").get_by_text("epoch", exact=True).click()
    page.locator(".st-key-compare-log input[role='switch']").check(force=True)
    wanted = {
        "group": [group.id],
        "metric": ["val_loss"],
        "smooth": ["0.99"],
        "x": ["epoch"],
        "log": ["1"],
    }

    def settled(plot: dict) -> bool:
        query = parse_qs(urlsplit(page.url).query)
        return plot["ytype"] == "log" and plot["xtitle"] == "epoch" and query.get("log") == ["1"]

    before = wait_plot(page, "chart-overlay-val_loss", settled, "the chosen view")
    query = parse_qs(urlsplit(page.url).query)
    assert {k: v for k, v in query.items() if k != "runs"} == wanted
    assert sorted(int(i) for i in query["runs"][0].split(",")) == [r.id for r in kept]
    link = page.url
    page.screenshot(path=str(ARTIFACTS / "compare-link-before.png"), full_page=True)

    other = browser.new_context(viewport={"width": 1400, "height": 1400})
    try:
        fresh = other.new_page()
        fresh.set_default_timeout(TIMEOUT)
        after = open_compare(fresh, link, "val_loss")
        _expect_view(fresh, group.label, "Validation loss", "0.99", "epoch", log=True)
        wait_tags(fresh, kept)
        assert sorted(t["name"] for t in lines(after)) == sorted(t["name"] for t in lines(before))
        assert (after["ytype"], after["xtitle"]) == ("log", "epoch")
        assert parse_qs(urlsplit(fresh.url).query) == query  # the page keeps the link as it is
        fresh.screenshot(path=str(ARTIFACTS / "compare-link-after.png"), full_page=True)
    finally:
        other.close()


def test_a_bad_link_says_so_in_one_line_and_shows_the_defaults(server, page):
    url, store = server
    default = store.group(store.latest_finished_group())
    open_compare(page, f"{url}/compare?group=nope&smooth=7")
    warning = page.locator("[data-testid='stAlert']").filter(has_text="could not be used")
    expect(warning).to_have_count(1)
    expect(warning.locator("[data-testid='stMarkdownContainer']")).to_have_text(
        "The link's group=nope, smooth=7 could not be used: the defaults are shown."
    )
    _expect_view(page, default.label, "Validation accuracy", "0.60", "step", log=False)
    wait_tags(page, candidates(store, default.id))


def _expect_view(page: Page, group: str, metric: str, smooth: str, x: str, log: bool) -> None:
    """The Compare widgets show this group, metric, smoothing, x axis and log setting."""
    expect(page.locator(".st-key-compare-group [role='combobox']")).to_have_value(group)
    expect(page.locator(".st-key-compare-metric [role='combobox']")).to_have_value(metric)
    slider = page.locator(".st-key-compare-smooth input[type='range']")
    expect(slider).to_have_attribute("aria-valuetext", smooth)
    expect(page.locator(".st-key-compare-x label:has(input:checked)")).to_have_text(x)
    switch = page.locator(".st-key-compare-log input[role='switch']")
    expect(switch).to_be_checked(checked=log)
