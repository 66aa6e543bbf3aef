"""The Sweep page (pages/sweep.py), driven headless with AppTest and a runner whose backend
starts nothing (test_app's ``runner`` fixture), inside app.py's navigation so that its page
links resolve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from bn_core.config import TrainConfig
from tests.conftest import assert_runs_without_tensorflow
from tests.seed_helpers import seed_sweep

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "sweep.py")


@pytest.fixture
def open_sweep(runner):  # noqa: F811
    """A function that opens the Sweep page in app.py's navigation."""

    def open_page() -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
        at.switch_page("pages/sweep.py").run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return open_page


def test_empty_store_shows_the_default_grid(open_sweep):
    at = open_sweep()
    assert at.multiselect(key="sweep-variants").value == ["lenet", "lenet_fc_bn2", "lenet_keras_bn"]
    assert at.multiselect(key="sweep-lr").value == [1, 5, 30]
    assert "**9 runs**: 3 variant(s) × 3 point(s) × 1 seed(s), 10 epoch(s) each." in [
        m.value for m in at.markdown
    ]
    at.radio(key="sweep-kind").set_value("batch size").run()
    assert at.multiselect(key="sweep-batch").value == [4, 16, 64, 256]
    assert not [w for w in at.multiselect if w.key == "sweep-lr"]
    assert "No sweep in the store yet" in at.info[0].value


def test_start_queues_the_lr_grid_as_one_sweep_group(open_sweep, runner, have):  # noqa: F811
    at = open_sweep()
    at.multiselect(key="sweep-variants").set_value(["lenet", "lenet_fc_bn2"])
    at.number_input(key="sweep-seeds").set_value(2)
    at.checkbox(key="sweep-quick").check()
    at.select_slider(key="sweep-epochs").set_value(3).run()
    assert "**12 runs**" in " ".join(m.value for m in at.markdown)
    at.button(key="sweep-start").click().run()
    assert not at.exception and not at.error
    runs = runner.store.list_runs()
    grid = sorted((r.variant, r.config.learning_rate or 0, r.seed) for r in runs)
    assert grid == sorted(
        (v, lr, s) for v in ("lenet", "lenet_fc_bn2") for lr in (0, 5e-3, 3e-2) for s in (0, 1)
    )
    assert {(r.config.epochs, r.config.train_limit) for r in runs} == {(3, 5000)}
    assert len({r.group_id for r in runs}) == 1 and runs[0].group_id.startswith("sweep-")
    assert "Queued 12 run(s)" in at.success[0].value
    assert at.page_link[0].proto.page == "runs"
    assert runner.backend.started == []


def test_start_queues_a_batch_size_by_lr_grid(open_sweep, runner, have):  # noqa: F811
    at = open_sweep()
    at.multiselect(key="sweep-variants").set_value(["lenet_fc_bn2"])
    at.radio(key="sweep-kind").set_value("both").run()
    at.multiselect(key="sweep-lr").set_value([1, 5])
    at.multiselect(key="sweep-batch").set_value([16, 256]).run()
    at.button(key="sweep-start").click().run()
    runs = runner.store.list_runs()
    assert sorted((r.config.learning_rate or 0, r.config.batch_size) for r in runs) == [
        (0, 16),
        (0, 256),
        (5e-3, 16),
        (5e-3, 256),
    ]


def test_bad_input_queues_nothing(open_sweep, runner, have):  # noqa: F811
    at = open_sweep()
    at.multiselect(key="sweep-variants").set_value([]).run()
    assert "pick at least one variant" in at.warning[0].value
    at.button(key="sweep-start").click().run()
    assert "pick at least one variant" in at.error[0].value
    assert runner.store.list_runs() == []


def test_the_sweep_starts_from_the_train_forms_last_choices(open_sweep, runner, have):  # noqa: F811
    at = open_sweep()  # through the Train page, app.py's default
    assert at.selectbox(key="sweep-dataset").value == "mnist"  # MNIST is here: the default
    at.switch_page("pages/train.py").run()
    at.selectbox(key="train-dataset").set_value("fashion_mnist")
    at.select_slider(key="train-epochs").set_value(3)
    at.checkbox(key="train-quick").check().run()
    at.number_input(key="train-train-limit").set_value(2000).run()
    at.switch_page("pages/sweep.py").run()
    assert at.selectbox(key="sweep-dataset").value == "fashion_mnist"
    assert at.select_slider(key="sweep-epochs").value == 3
    assert at.checkbox(key="sweep-quick").value is True
    assert "2,000 training images" in at.checkbox(key="sweep-quick").label
    at.select_slider(key="sweep-epochs").set_value(5).run()  # one choice on both pages
    at.button(key="sweep-start").click().run()
    assert {
        (r.config.dataset, r.config.epochs, r.config.train_limit) for r in runner.store.list_runs()
    } == {("fashion_mnist", 5, 2000)}
    at.switch_page("pages/train.py").run()
    assert at.select_slider(key="train-epochs").value == 5


def test_the_sweep_form_survives_a_visit_to_another_page(open_sweep, runner, have):  # noqa: F811
    at = open_sweep()
    at.multiselect(key="sweep-variants").set_value(["lenet"])
    at.radio(key="sweep-kind").set_value("batch size").run()
    at.multiselect(key="sweep-batch").set_value([16, 256]).run()
    at.switch_page("pages/runs.py").run()
    at.switch_page("pages/sweep.py").run()
    assert at.multiselect(key="sweep-variants").value == ["lenet"]
    assert at.radio(key="sweep-kind").value == "batch size"
    assert at.multiselect(key="sweep-batch").value == [16, 256]
    at.radio(key="sweep-kind").set_value("both").run()  # the lr multipliers as left
    assert at.multiselect(key="sweep-lr").value == [1, 5, 30]


def test_an_unavailable_dataset_is_refused(open_sweep, runner, have):  # noqa: F811
    have("fashion_mnist")
    at = open_sweep()
    dataset = at.selectbox(key="sweep-dataset")
    assert dataset.value == "fashion_mnist" and not at.warning
    dataset.set_value("mnist").run()
    assert "mnist is not on this machine" in at.warning[0].value
    assert at.page_link[0].proto.page == "train"  # where the download and folder field are
    at.button(key="sweep-start").click().run()
    assert "mnist is not on this machine" in at.error[0].value
    assert runner.store.list_runs() == []


def test_results_chart_marks_diverged_runs(open_sweep, runner):  # noqa: F811
    seed_sweep(runner.store)
    runner.store.create_run(TrainConfig(), "not-a-sweep")  # a plain group is not offered
    at = open_sweep()
    picker = at.selectbox(key="sweep-group")
    assert picker.value == "sweep-test"  # the only sweep: the plain group is not offered
    assert len(picker.options) == 1 and " · 8 runs (#1–8) · 7 completed" in picker.options[0]
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    crosses = [t for t in figure["data"] if t.get("mode") == "markers"]
    assert len(crosses) == 1 and crosses[0]["marker"]["symbol"] == "x"
    assert crosses[0]["hovertext"] == ["lenet seed 1: diverged"]
    lines = [t for t in figure["data"] if t.get("mode") == "lines+markers"]
    assert [t["name"] for t in lines] == ["lenet (2 seeds)", "lenet_fc_bn2 (2 seeds)"]
    table = at.table[0].value
    row = table[(table.index == "lenet") & (table["lr_multiplier"] == 30)]
    assert row["diverged"].tolist() == [1] and row["completed"].tolist() == [1]


def test_the_sweep_page_does_not_import_tensorflow(tmp_path):
    assert_runs_without_tensorflow(
        f"""
        from streamlit.testing.v1 import AppTest
        from bn_core.runs.store.run_store import RunStore
        from tests.seed_helpers import seed_sweep
        seed_sweep(RunStore())  # finished runs only: the real runner starts nothing
        at = AppTest.from_file({PAGE!r}, default_timeout=60).run()
        assert not at.exception, [e.value for e in at.exception]
        """,
        tmp_path / "home",
    )
