"""The Runs table in a real browser, over a store of 1,000 finished runs: pages,
search by run number, status and group filters, and the group's curves overlaid.

One ``streamlit run app.py`` for the module, over a store that ``bench/synthetic_store.py``
writes in about a second (67 groups of up to 15 runs, 2 epochs each): nothing trains. Each
test opens a fresh browser context (a new Streamlit session). The grid draws its cells on a
canvas; the rows are read from the accessible table it keeps inside that canvas (filled once
the grid has focus), and every count is checked against the store. Screenshots go to
``artifacts/e2e/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from bn_core.runs.store.run_store import RunStore
from bn_core.views.runs import run_label
from tests.browser import (
    candidates,
    choose,
    legend_names,
    lines,
    synthetic_dashboard,
    wait_plot,
    wait_until,
)

N_RUNS = 1000
HEADER_PX, ROW_PX = 36, 35  # the grid's header and row heights (Streamlit's defaults)
# The grid's accessible table: its row count (the header row included) and the rendered rows'
# cells of the "run" and "status" columns (the grid renders only the rows in view).
READ_GRID = """() => {
  const table = document.querySelector("[data-testid='stDataFrame'] table[role='grid']");
  if (!table) return null;
  const rows = Array.from(table.querySelectorAll("tbody tr[role='row']"));
  const cell = (row, col) => {
    const td = row.querySelector(`td[aria-colindex='${col}']`);
    return td ? td.textContent : null;
  };
  return {
    rows: Number(table.getAttribute("aria-rowcount")) - 1,
    runs: rows.map((row) => Number(cell(row, 1))),
    statuses: rows.map((row) => cell(row, 2)),
  };
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, RunStore]]:
    """(URL, run store) of a dashboard over 1,000 finished runs."""
    with synthetic_dashboard(tmp_path_factory.mktemp("runs-table"), N_RUNS, 2) as served:
        yield served


def open_runs(page: Page, url: str) -> None:
    page.goto(url + "/runs")
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    expect(caption(page)).to_be_visible()


def caption(page: Page):
    """The line under the table: "Runs a–b of N · page p of P. ..."."""
    return page.get_by_text("Select rows to see their curves and actions.")


def read_grid(page: Page, ok, what: str) -> dict:
    """The grid's rows once ``ok`` holds for them; focusing the grid fills its accessible
    table (focus moves nothing: no cell or row gets selected)."""

    def read():
        page.locator("[data-testid='data-grid-canvas']").first.focus()
        return page.evaluate(READ_GRID)

    return wait_until(page, read, ok, what)


def test_the_table_pages_through_a_thousand_runs(server, page):
    url, _ = server
    open_runs(page, url)
    expect(caption(page)).to_contain_text("Runs 1–50 of 1,000 · page 1 of 20.")
    grid = read_grid(page, lambda g: g["rows"] == 50, "50 rows")
    assert grid["runs"][:3] == [1000, 999, 998]  # newest first

    number = page.locator(".st-key-runs-page input")
    number.fill("2")
    number.press("Enter")
    expect(caption(page)).to_contain_text("Runs 51–100 of 1,000 · page 2 of 20.")
    grid = read_grid(page, lambda g: g["runs"][:1] == [950], "page 2")
    assert grid["rows"] == 50 and grid["runs"][:3] == [950, 949, 948]


def test_searching_a_run_number_finds_that_run_only(server, page):
    url, store = server
    open_runs(page, url)
    search = page.locator(".st-key-runs-search input")
    search.fill("#510")
    search.press("Enter")
    expect(caption(page)).to_contain_text("Runs 1–1 of 1 · page 1 of 1.")
    grid = read_grid(page, lambda g: g["rows"] == 1, "one row")
    assert grid["runs"] == [510]  # not the 56 runs whose text holds "510"

    # Its row's checkbox (drawn on the canvas: clicked where the grid draws it) selects it.
    box = page.locator("[data-testid='data-grid-canvas']").first.bounding_box()
    page.mouse.click(box["x"] + 14, box["y"] + HEADER_PX + ROW_PX / 2)
    expect(page.get_by_role("heading", name="Curves of 1 selected run(s)")).to_be_visible()
    expect(page.locator(".st-key-selected-510")).to_be_visible()
    expected = legend_names(store, [store.get(510)], "loss")  # none: it was cancelled early
    plot = wait_plot(page, "overlay-loss", lambda p: p["traces"] is not None, "drawn")
    assert sorted(t["name"] for t in lines(plot)) == expected
    assert parse_qs(urlsplit(page.url).query)["runs"] == ["510"]


def test_the_status_filter_counts_what_the_store_counts(server, page):
    url, store = server
    _, failed = store.runs_page(statuses=("failed",), limit=1)
    assert 0 < failed < 50  # one page: every row is in the grid
    open_runs(page, url)
    page.locator(".st-key-runs-status [role='combobox']").click()
    page.get_by_role("option", name="failed", exact=True).click()
    page.keyboard.press("Escape")
    expect(caption(page)).to_contain_text(f"Runs 1–{failed} of {failed} · page 1 of 1.")
    grid = read_grid(page, lambda g: g["rows"] == failed, f"{failed} rows")
    assert set(grid["statuses"]) == {"failed"}
    ids = sorted(r.id for r in store.runs_page(statuses=("failed",), limit=50)[0])
    assert sorted(grid["runs"]) == ids[-len(grid["runs"]) :]  # the rows in view, newest first


def test_a_group_filter_overlays_that_group(server, page):
    url, store = server
    group = next(g for g in store.list_groups() if g.runs == 15 and g.completed == 15)
    open_runs(page, url)
    choose(page, "runs-group", group.label, typed=group.name)
    expect(caption(page)).to_contain_text("Runs 1–15 of 15 · page 1 of 1.")
    expect(page.get_by_role("heading", name=f"Curves of group {group.name}")).to_be_visible()
    names = sorted(run_label(r, status=False) for r in candidates(store, group.id))
    for metric in ("loss", "accuracy"):
        plot = wait_plot(page, f"overlay-{metric}", lambda p: len(lines(p)) == 15, "15 lines")
        assert sorted(t["name"] for t in lines(plot)) == names
        assert plot["hovermode"] == "x unified"
    grid = read_grid(page, lambda g: g["rows"] == 15, "15 rows")
    assert set(grid["runs"]) <= {r.id for r in candidates(store, group.id)}


def test_the_group_filter_survives_a_rename_elsewhere(server, page):
    """A group's label changes while the page shows it (renamed in another tab or by the CLI;
    likewise its counts when a run ends): the filter must keep that group."""
    url, store = server
    group = next(g for g in store.list_groups() if g.runs == 15 and g.completed == 14)
    open_runs(page, url)
    choose(page, "runs-group", group.label, typed=group.name)
    expect(caption(page)).to_contain_text("Runs 1–15 of 15 · page 1 of 1.")
    store.rename_group(group.id, "Renamed elsewhere")
    choose(page, "runs-sort", "oldest first")  # any rerun
    renamed = store.group(group.id).label
    expect(page.locator(".st-key-runs-group [role='combobox']")).to_have_value(renamed)
    expect(caption(page)).to_contain_text("Runs 1–15 of 15 · page 1 of 1.")
    assert parse_qs(urlsplit(page.url).query)["group"] == [group.id]
