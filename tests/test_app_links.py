"""Hostile share links on every page that reads its URL (Runs, Compare, Inside the network,
Window size, Sweep), driven headless with AppTest: whatever a link holds that the page cannot
use (a key it does not read, a malformed value, a run or group that does not exist) is named
in one warning, in one wording, shown safely (cut, control characters escaped, no Markdown
made of it); the page shows its defaults and does not fail. The same with an empty store,
where the page has nothing to show the link's view in."""

from __future__ import annotations

import re

import pytest

from tests.helpers import open_with_link, seed_group
from tests.seed_helpers import seed_probed, seed_sweep

PAGES = ["pages/runs.py", "pages/compare.py", "pages/network.py", "pages/window.py"]
PAGES += ["pages/sweep.py"]
NINES = "9" * 30
# (the link's query string, what the warning must name as the reader sees it)
CASES = {
    "unknown-key": ({"select": "abc"}, "select=abc"),
    "unknown-key-list": ({"select": f"1,abc,-1,{NINES}"}, f"select=1,abc,-1,{NINES}"),
    "bad-runs": ({"runs": f"1,abc,-1,{NINES}"}, f"runs=1,abc,-1,{NINES}"),
    "control-characters": ({"group": "a\x07b\nc\u202e"}, "group=a\\x07b\\nc\\u202e"),
    "10k-characters": ({"runs": "x" * 10_000}, f"runs={'x' * 40}… (10,000 characters)"),
    "no-such-run": ({"runs": "999"}, "runs=999"),
    "no-such-group": ({"group": "bogus"}, "group=bogus"),
    "markdown": ({"select": "**b** [a](http://e.org) $x$"}, "select=**b** [a](http://e.org) $x$"),
}
ENDING = " could not be used: the defaults are shown."


def link_notes(at) -> list[str]:
    """The warnings that name a link's unusable values, as the reader sees them (Markdown's
    backslash escapes undone)."""
    notes = [w.value for w in at.warning if w.value.endswith(ENDING)]
    return [re.sub(r"\\(.)", r"\1", n) for n in notes]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("page", PAGES)
def test_a_link_value_the_page_cannot_use_is_named_in_one_line(runner, page, case):
    seed_group(runner.store)
    seed_probed(runner.store)
    seed_sweep(runner.store)
    params, named = CASES[case]
    at = open_with_link(page, **params)
    notes = link_notes(at)
    assert notes == [f"The link's {named}{ENDING}"], [w.value for w in at.warning]
    assert all(c.isprintable() for c in notes[0])
    assert not at.exception


@pytest.mark.parametrize("page", ["pages/runs.py", "pages/compare.py"])
def test_of_the_link_s_runs_those_that_exist_are_selected_the_others_named(runner, page):
    seed_group(runner.store)  # runs 1-4, group "study"
    at = open_with_link(page, runs="1,999,2")
    assert link_notes(at) == [f"The link's runs=999{ENDING}"]
    if page == "pages/compare.py":
        assert set(at.multiselect(key="compare-runs").value) == {1, 2}
    else:
        assert {int(i) for i in at.query_params["runs"].split(",")} == {1, 2}


@pytest.mark.parametrize("page", PAGES)
def test_with_nothing_to_show_the_link_is_still_named(runner, page):
    at = open_with_link(page, group="bogus", select="abc")
    assert link_notes(at) == [f"The link's group=bogus, select=abc{ENDING}"]
    assert not at.exception


@pytest.mark.parametrize("page", PAGES)
def test_a_good_link_and_tracking_tails_say_nothing(runner, page):
    seed_group(runner.store)
    seed_probed(runner.store)
    seed_sweep(runner.store)
    group = {"pages/network.py": "study", "pages/compare.py": "study"}.get(page, "sweep-test")
    at = open_with_link(page, group=group, utm_source="mail", embed_options="dark_theme")
    assert link_notes(at) == [] and not at.exception
