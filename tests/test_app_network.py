"""The "Inside the network" page (pages/network.py) under AppTest, on a seeded run store, and
the figure builders of bn_core.views.probes it calls.

As in test_app.py, each test gets a fresh store in tmp_path and a runner that starts nothing.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from bn_core.config import TrainConfig
from bn_core.variants import SITES
from bn_core.views import probes as pv
from tests.conftest import assert_runs_without_tensorflow
from tests.helpers import open_page, open_with_link
from tests.seed_helpers import STEPS, layer_values, seed_probed

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGE = "pages/network.py"


def figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def title(figure: dict) -> str:
    return figure["layout"]["title"]["text"]


def by_title(at, text: str) -> dict:
    return next(f for f in figures(at) if title(f) == text)


def median_trace(figure: dict, name: str) -> dict:
    return next(t for t in figure["data"] if t.get("name") == name)


def values(array) -> list:
    """A trace's x or y as a list: plotly sends numpy data as base64 typed arrays."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


# ----------------------------------------------------------------------------- the page


def test_an_empty_store_says_how_to_get_probes(runner):  # noqa: F811
    at = open_page(PAGE)
    assert "probe_every" in at.info[0].value
    assert at.page_link[0].proto.page == "train"


def test_runs_without_probes_are_not_offered(runner):  # noqa: F811
    runner.store.create_run(TrainConfig(), "g")
    at = open_page(PAGE)
    assert "No run has probes yet" in at.info[0].value
    assert not at.get("plotly_chart")


def test_runs_with_probes_on_the_way_are_awaited(runner):  # noqa: F811
    """Opened before the first probe arrives, the page polls instead of giving up."""
    runner.store.create_run(TrainConfig(probe_every=96), "g")
    at = open_page(PAGE)
    assert "Waiting for the first probes of 1" in at.info[0].value
    assert not at.page_link and not at.get("plotly_chart")


def test_figure_1_for_the_latest_probed_group(runner):  # noqa: F811
    ids = seed_probed(runner.store)
    at = open_page(PAGE)
    assert not at.error
    # The newest group with probes ("newer" has none), all of its probed runs.
    assert at.selectbox(key="network-group").value == "study"
    assert len(at.selectbox(key="network-group").options) == 2  # "study" and "old"
    selected = at.multiselect(key="network-runs")
    assert sorted(selected.value) == sorted([ids["lenet"], ids["lenet_fc_bn2"]])
    assert len(selected.options) == 2

    charts = figures(at)
    assert len(charts) == 2 * len(SITES) + 3  # site pairs, accuracy, mode gap, gradient norms
    plain_name = f"#{ids['lenet']} lenet s0"
    bn_name = f"#{ids['lenet_fc_bn2']} lenet_fc_bn2 s0"
    for i, site in enumerate(SITES):
        left = by_title(at, f"{site} without BN · whole layer")
        right = by_title(at, f"{site} with BN · whole layer")
        assert [t["name"] for t in left["data"] if t.get("showlegend", True)] == [plain_name]
        assert [t["name"] for t in right["data"] if t.get("showlegend", True)] == [bn_name]
        median = median_trace(left, plain_name)
        assert values(median["x"]) == list(STEPS)
        assert values(median["y"]) == [layer_values("lenet", i, s)[1] for s in STEPS]
        upper, lower = left["data"][0], left["data"][1]  # the 15-85 band under the median
        assert values(upper["y"]) == [layer_values("lenet", i, s)[2] for s in STEPS]
        assert values(lower["y"]) == [layer_values("lenet", i, s)[0] for s in STEPS]
        assert lower["fill"] == "tonexty"

    accuracy = by_title(at, "Probe-batch accuracy")
    assert [t["name"] for t in accuracy["data"]] == [plain_name, bn_name]
    assert values(accuracy["data"][0]["y"]) == pytest.approx([0.1, 0.42, 0.74])
    grads = by_title(at, "Gradient norm per layer")
    assert len(grads["data"]) == len(pv.GRAD_LAYERS) * 2
    assert grads["layout"]["yaxis"]["type"] == "log"
    gap = by_title(at, "Validation accuracy: inference vs batch statistics")
    assert len(gap["data"]) == 4 and gap["data"][1]["line"]["dash"] == "dash"
    table = at.table[0].value
    assert list(table["epoch"]) == [2, 2]
    assert list(table["gap"]) == pytest.approx([0.02, 0.02])
    assert at.button(key="network-refresh")  # nothing active: no polling, a Refresh button


def test_the_unit_toggle_shows_the_tracked_unit(runner):  # noqa: F811
    ids = seed_probed(runner.store)
    at = open_page(PAGE)
    at.toggle(key="network-unit").set_value(True).run()
    assert not at.exception
    figure = by_title(at, "F5 without BN · tracked unit (channel / unit 0)")
    trace = median_trace(figure, f"#{ids['lenet']} lenet s0")
    assert values(trace["y"]) == [2 * layer_values("lenet", 2, s)[1] for s in STEPS]


def test_selection_changes_and_deleted_runs(runner):  # noqa: F811
    ids = seed_probed(runner.store)
    at = open_page(PAGE)
    at.selectbox(key="network-group").set_value("old").run()
    assert at.multiselect(key="network-runs").value == [ids["old"]]  # another group: its runs
    assert len(figures(at)) == len(SITES) + 3  # only "without BN" panels have a run
    assert sum("no selected run" in c.value for c in at.caption) == len(SITES)
    at.multiselect(key="network-runs").set_value([]).run()
    assert "Select one or more runs" in at.info[0].value
    at.selectbox(key="network-group").set_value("study").run()
    at.multiselect(key="network-runs").set_value([ids["lenet_fc_bn2"], ids["lenet"]]).run()
    runner.store.delete(ids["lenet_fc_bn2"])
    at.run()
    assert not at.exception
    assert at.multiselect(key="network-runs").value == [ids["lenet"]]


def test_an_active_run_is_polled(runner):  # noqa: F811
    seed_probed(runner.store, status="running")
    at = open_page(PAGE)
    assert not at.exception
    assert not [b for b in at.button if b.key == "network-refresh"]  # the fragment polls


# ----------------------------------------------------------------------------- view helpers


def test_default_selection_and_bn_split(runner):  # noqa: F811
    ids = seed_probed(runner.store)
    runs = runner.store.list_runs()
    probed = runner.store.probed_run_ids()
    assert probed == {ids["old"], ids["lenet"], ids["lenet_fc_bn2"]}
    assert pv.default_selection(runs, probed) == [ids["lenet"], ids["lenet_fc_bn2"]]
    assert pv.default_selection(runs, set()) == []
    bn1 = runner.store.get(ids["plain"])  # lenet_bn1: BN at C1 only
    assert pv.split_by_bn([bn1], "C1") == ([], [bn1])
    assert pv.split_by_bn([bn1], "C3") == ([bn1], [])


def test_frames_split_percentiles_from_accuracy(runner):  # noqa: F811
    ids = seed_probed(runner.store)
    rows = runner.store.probe_rows([ids["lenet"]])
    frame = pv.percentile_frame(rows)
    assert len(frame) == len(STEPS) * len(SITES) * 2
    assert list(pv.accuracy_frame(rows)["step"]) == list(STEPS)
    empty = pv.percentile_frame([])
    assert empty.empty and "p50" in empty.columns


# ----------------------------------------------------------------------------- no TensorFlow


def test_the_network_page_never_imports_tensorflow(tmp_path):
    """The page, with probed runs, in a fresh interpreter: no TensorFlow or Keras loaded."""
    assert_runs_without_tensorflow(
        f"""
        import sys
        from streamlit.testing.v1 import AppTest
        from bn_core.runs.store.run_store import RunStore
        from tests.seed_helpers import seed_probed
        import bn_core.views.probes, pages._ui  # the page's own imports
        seed_probed(RunStore())  # finished runs only: the real runner starts nothing
        at = AppTest.from_file({APP!r}, default_timeout=60).run()
        at.switch_page({PAGE!r}).run()
        assert not at.exception, [e.value for e in at.exception]
        assert len(at.get("plotly_chart")) == 11, len(at.get("plotly_chart"))
        """,
        tmp_path / "home",
    )


def test_a_link_opens_its_group_and_the_url_follows_the_picker(runner):  # noqa: F811
    ids = seed_probed(runner.store)
    at = open_with_link(PAGE, group="old")
    assert at.selectbox(key="network-group").value == "old"
    assert at.multiselect(key="network-runs").value == [ids["old"]]
    at.selectbox(key="network-group").set_value("study").run()
    assert at.query_params["group"] == "study"
    at = open_with_link(PAGE, group="newer")  # a group without probes: the default instead
    assert at.selectbox(key="network-group").value == "study"
    assert any("group=newer could not be used" in w.value for w in at.warning)
